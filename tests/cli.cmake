# Whole-program tests of the doppel command.
add_test(NAME cli_index_dir
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_index_dir.sh $<TARGET_FILE:doppel_cli> hist)
add_test(NAME cli_index_dir_cnn
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_index_dir.sh $<TARGET_FILE:doppel_cli> mobilenet-v2-mid)
# kill -9 during indexing, 20 times (needs samples-eval from tools/make_samples.sh).
find_program(DP_SYS_PYTHON /usr/bin/python3)
add_test(NAME cli_kill9
  COMMAND ${DP_SYS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_kill9.py $<TARGET_FILE:doppel_cli>
          ${CMAKE_SOURCE_DIR}/samples-eval)
set_tests_properties(cli_kill9 PROPERTIES LABELS slow TIMEOUT 1800)
foreach(m phash mobilenet-v2-mid)
  add_test(NAME cli_dedup_${m}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_dedup.sh $<TARGET_FILE:doppel_cli>
            ${CMAKE_SOURCE_DIR}/samples ${m})
endforeach()
# The C API example from docs/api.md builds against the public header only and runs.
add_executable(example_similar ${CMAKE_SOURCE_DIR}/examples/similar.c)
target_link_libraries(example_similar PRIVATE doppel)
add_test(NAME example_similar
  COMMAND sh -c "cd \"$0\" && rm -f similar.dpl && \"$1\" \"$2\" \"$2/animals-and-nature/$(ls \"$2/animals-and-nature\" | head -1)\""
          ${CMAKE_CURRENT_BINARY_DIR} $<TARGET_FILE:example_similar> ${CMAKE_SOURCE_DIR}/samples)
set_tests_properties(example_similar PROPERTIES PASS_REGULAR_EXPRESSION "1  0.0000  animals-and-nature/")
