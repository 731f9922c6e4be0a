# doppel eval and viz, end to end (the library parts are tests/unit/test_eval*.c
# and test_tsne*.c, registered by the unit-test glob).
add_test(NAME cli_eval
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_eval_cli.sh $<TARGET_FILE:doppel_cli>)
# doppel pca end to end on the sample images (needs samples/ from
# tools/make_samples.sh; hist: no model files needed).
add_test(NAME cli_pca
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_pca_cli.sh $<TARGET_FILE:doppel_cli>
          ${CMAKE_SOURCE_DIR}/samples hist)
