# Exact-search benchmark harness (bench/search/run.sh); no test: timing is
# never pass/fail. bench_f16 uses the internal kernels, so it links the
# static library.
add_executable(bench_f16 ${CMAKE_SOURCE_DIR}/bench/search/bench_f16.c)
target_link_libraries(bench_f16 PRIVATE doppel_static)
