# Whole-program tests of the doppel command.
add_test(NAME cli_index_dir
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_index_dir.sh $<TARGET_FILE:doppel_cli> hist)
add_test(NAME cli_index_dir_cnn
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_index_dir.sh $<TARGET_FILE:doppel_cli> mobilenet-v2-mid)
