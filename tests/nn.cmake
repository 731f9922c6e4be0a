# nn: ONNX conformance against Debian's libonnx-testdata node tests.
set(DP_ONNX_TESTDATA /usr/share/libonnx-testdata/data CACHE PATH "libonnx-testdata data dir")
add_executable(onnx_node_tests ${CMAKE_CURRENT_SOURCE_DIR}/onnx_node_tests.c)
target_link_libraries(onnx_node_tests PRIVATE doppel_static)
if(EXISTS ${DP_ONNX_TESTDATA}/node)
  add_test(NAME onnx_node_tests COMMAND onnx_node_tests ${DP_ONNX_TESTDATA}/node)
  set_tests_properties(onnx_node_tests PROPERTIES TIMEOUT 900)
endif()
if(EXISTS ${DP_ONNX_TESTDATA}/pytorch-converted)
  add_test(NAME onnx_pytorch_tests COMMAND onnx_node_tests
    ${DP_ONNX_TESTDATA}/pytorch-converted ${DP_ONNX_TESTDATA}/pytorch-operator ${DP_ONNX_TESTDATA}/simple)
  set_tests_properties(onnx_pytorch_tests PROPERTIES TIMEOUT 900)
endif()
