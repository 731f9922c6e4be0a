/* doppel model info MODEL: what a model is and how doppel will use it. */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: doppel model info [--json] [--models-dir DIR] MODEL\n\n"
               "Describe an ONNX model: inputs, outputs, op counts, parameters, FLOPs and,\n"
               "for named models, the embedding doppel takes from it.\n\n"
               "MODEL is a name (inception-v3, mobilenet-v2-mid; see docs/models.md) or a\n"
               "path to an .onnx file.\n\n"
               "  --json            machine-readable output\n"
               "  --models-dir DIR  where named models live (default: $DOPPEL_MODELS, models/)\n"
               "  -h, --help        this help\n");
}

static void dims_str(const dp_tensor *t, char *buf, size_t cap)
{
    size_t off = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && off < cap; i++) {
        if (t->dims[i] < 0)
            off += (size_t)snprintf(buf + off, cap - off, "%s?", i ? ", " : "");
        else
            off += (size_t)snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "",
                                    (long long)t->dims[i]);
    }
    if (off < cap) snprintf(buf + off, cap - off, "]");
}

static json_t *tensor_json(const dp_tensor *t)
{
    json_t *d = json_array();
    for (int i = 0; i < t->ndim; i++)
        json_array_append_new(d, json_integer(t->dims[i]));
    return json_pack("{s:s, s:o}", "name", t->name, "dims", d);
}

static int info(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"models-dir", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    bool as_json = false;
    const char *models_dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            as_json = true;
            break;
        case 'd':
            models_dir = optarg;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("model info", "bad option");
        }
    }
    if (optind != argc - 1) return dp_cli_usage("model info", "expects one MODEL");
    const char *model = argv[optind];

    /* The embedder resolves names and reads the sidecar; the full graph is
     * opened separately so the description covers every node in the file. */
    dp_embedder_params ep = dp_embedder_default_params();
    ep.model = model;
    ep.models_dir = models_dir;
    dp_embedder *emb = NULL;
    if (dp_embedder_open(&ep, &emb)) return dp_cli_fail("model info", "cannot open %s", model);
    dp_embedder_info ei;
    dp_embedder_describe(emb, &ei);

    dp_model *m = NULL;
    if (dp_model_open(ei.model_path, NULL, &m)) {
        dp_embedder_free(emb);
        return dp_cli_fail("model info", "cannot open %s", ei.model_path);
    }
    dp_model_info mi;
    dp_model_describe(m, &mi);

    if (as_json) {
        json_t *ins = json_array(), *outs = json_array(), *ops = json_object();
        dp_tensor t;
        for (size_t i = 0; i < mi.n_inputs && !dp_model_input(m, i, &t); i++)
            json_array_append_new(ins, tensor_json(&t));
        for (size_t i = 0; i < mi.n_outputs && !dp_model_output_info(m, i, &t); i++)
            json_array_append_new(outs, tensor_json(&t));
        const char *op;
        size_t cnt;
        for (size_t i = 0; !dp_model_op(m, i, &op, &cnt); i++)
            json_object_set_new(ops, op, json_integer((json_int_t)cnt));
        const dp_preprocess *p = &ei.preprocess;
        json_t *root =
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:o, s:{s:s, s:i, s:s}, "
                      "s:{s:i, s:i, s:s, s:s, s:f, s:[f,f,f], s:[f,f,f]}}",
                      "name", ei.name, "path", ei.model_path, "producer", mi.producer, "opset",
                      (json_int_t)mi.opset, "nodes_in_file", (json_int_t)mi.n_nodes_in_file,
                      "nodes", (json_int_t)mi.n_nodes, "params", (json_int_t)mi.n_params, "flops",
                      mi.flops, "inputs", ins, "outputs", outs, "ops", ops, "embedding", "node",
                      ei.node, "dim", ei.dim, "fingerprint", ei.fingerprint, "preprocess", "width",
                      p->width, "height", p->height, "color", p->bgr ? "BGR" : "RGB", "resize",
                      p->resize == DP_RESIZE_CROP ? "crop" : "squash", "scale", (double)p->scale,
                      "mean", (double)p->mean[0], (double)p->mean[1], (double)p->mean[2], "std",
                      (double)p->std[0], (double)p->std[1], (double)p->std[2]);
        char *s = json_dumps(root, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(root);
    } else {
        char buf[256];
        printf("model       %s\n", ei.name);
        printf("file        %s\n", ei.model_path);
        printf("producer    %s, opset %lld\n", mi.producer, (long long)mi.opset);
        printf("nodes       %zu in file\n", mi.n_nodes_in_file);
        printf("parameters  %.2f M\n", (double)mi.n_params / 1e6);
        printf("compute     %.2f GFLOPs per image (whole graph)\n", mi.flops / 1e9);
        dp_tensor t;
        for (size_t i = 0; i < mi.n_inputs && !dp_model_input(m, i, &t); i++) {
            dims_str(&t, buf, sizeof buf);
            printf("input       %s %s\n", t.name, buf);
        }
        for (size_t i = 0; i < mi.n_outputs && !dp_model_output_info(m, i, &t); i++) {
            dims_str(&t, buf, sizeof buf);
            printf("output      %s %s\n", t.name, buf);
        }
        printf("embedding   node '%s', %d-d, L2-normalised\n", ei.node, ei.dim);
        const dp_preprocess *p = &ei.preprocess;
        printf("preprocess  %dx%d %s, %s, x*%.6g, mean (%g, %g, %g), std (%g, %g, %g)\n", p->width,
               p->height, p->resize == DP_RESIZE_CROP ? "centre crop" : "squash",
               p->bgr ? "BGR" : "RGB", (double)p->scale, (double)p->mean[0], (double)p->mean[1],
               (double)p->mean[2], (double)p->std[0], (double)p->std[1], (double)p->std[2]);
        printf("fingerprint %s\n", ei.fingerprint);
        printf("ops        ");
        const char *op;
        size_t cnt;
        for (size_t i = 0; !dp_model_op(m, i, &op, &cnt); i++)
            printf(" %s×%zu", op, cnt);
        printf("\n");
    }
    dp_model_free(m);
    dp_embedder_free(emb);
    return DP_EXIT_OK;
}

int dp_cmd_model(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        help(argc < 2 ? stderr : stdout);
        return argc < 2 ? DP_EXIT_USAGE : DP_EXIT_OK;
    }
    if (!strcmp(argv[1], "info")) return info(argc - 1, argv + 1);
    return dp_cli_usage("model", "unknown subcommand '%s'", argv[1]);
}
