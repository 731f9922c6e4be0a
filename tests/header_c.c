/* Only the umbrella header: proves the public API compiles as C on its own. */
#include <doppel/doppel.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(dp_version(), DP_VERSION_STRING) != 0) {
        fprintf(stderr, "version mismatch: %s vs %s\n", dp_version(), DP_VERSION_STRING);
        return 1;
    }
    dp_model_free(NULL); /* free(NULL) is a no-op */
    return 0;
}
