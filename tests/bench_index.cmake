# Indexing throughput benchmark harness (bench/index/run.sh); no test: timing
# is never pass/fail.
add_executable(bench_index ${CMAKE_SOURCE_DIR}/bench/index/bench_index.c)
target_link_libraries(bench_index PRIVATE doppel)
