# Reference check of the default models: doppel vs TensorFlow.js (the original
# model) vs ONNX Runtime on the same tensors (tests/reference/run.sh).
# Labelled slow: it runs Inception-V3 through three engines, so the sanitizer
# pass (ctest -LE slow) leaves it out.
add_executable(dp_run_tensors ${CMAKE_CURRENT_SOURCE_DIR}/reference/dp_run_tensors.c)
target_link_libraries(dp_run_tensors PRIVATE doppel_static)

add_test(NAME reference_models
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/reference/run.sh --harness $<TARGET_FILE:dp_run_tensors>)
set_tests_properties(reference_models PROPERTIES
  LABELS "slow;reference"
  SKIP_RETURN_CODE 77
  TIMEOUT 1200
  RUN_SERIAL TRUE)

# The model benchmark's doppel harness (bench/model/run.sh runs it; timing is
# never part of the test run, so no test is registered for it).
add_executable(dp_bench_model ${CMAKE_SOURCE_DIR}/bench/model/dp_bench_model.c)
target_link_libraries(dp_bench_model PRIVATE doppel_static)
