# Index module: whole-program checks of `doppel index --vectors` / `search`
# against a numpy brute force (Debian's python3-numpy).
find_program(DP_DEBIAN_PYTHON /usr/bin/python3)
if(DP_DEBIAN_PYTHON)
  add_test(NAME index_numpy_oracle
    COMMAND ${DP_DEBIAN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/index/oracle.py $<TARGET_FILE:doppel_cli>)
  set_tests_properties(index_numpy_oracle PROPERTIES TIMEOUT 300)
endif()
