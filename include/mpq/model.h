/**
 * @file model.h
 * @brief Model descriptions (quantizable layers with shapes and optional weights), the zoo of
 * reference networks, and quantization policies (activation bits per layer, weight bits per
 * kernel).
 *
 * A *kernel* is one output channel of a layer: the weights that produce one output feature map
 * (conv) or one output unit (fully connected). Kernel-wise policies (AutoQ) give every kernel its
 * own weight bit width; layer-wise policies (HAQ) are the case where a layer's kernels agree.
 *
 * Thread safety: a model or policy may be used by one thread at a time. A model that is no longer
 * modified may be read from several threads at once (all getters are read-only).
 *
 * @since 0.1.0
 */
#ifndef MPQ_MODEL_H
#define MPQ_MODEL_H

#include <mpq/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup model Model and policy
 * @{ */

/** Kind of a quantizable layer. Depthwise convolution is a convolution with groups == in == out. */
typedef enum mpq_layer_kind {
    MPQ_LAYER_CONV = 1, /**< 2-D convolution (any groups). Weights [out][in/groups][kh][kw]. */
    MPQ_LAYER_FC = 2,   /**< Fully connected. Weights [out][in]. */
} mpq_layer_kind;

/**
 * Shape of one quantizable layer. Plain data; grows only at the end. Set @p size to
 * sizeof(mpq_layer_shape) before passing it in. For ::MPQ_LAYER_FC the spatial fields are 1 and
 * kernel/stride/dilation 1, padding 0 (mpq_layer_shape_fc() fills them).
 */
typedef struct mpq_layer_shape {
    size_t size;          /**< sizeof(mpq_layer_shape). */
    mpq_layer_kind kind;  /**< Conv or fully connected. */
    int32_t in_channels;  /**< Input channels (FC: input features). */
    int32_t out_channels; /**< Output channels = kernel count (FC: output features). */
    int32_t kernel_h;     /**< Kernel height (>= 1). */
    int32_t kernel_w;     /**< Kernel width (>= 1). */
    int32_t stride_h;     /**< Vertical stride (>= 1). */
    int32_t stride_w;     /**< Horizontal stride (>= 1). */
    int32_t pad_h;        /**< Zero padding added above and below (>= 0). */
    int32_t pad_w;        /**< Zero padding added left and right (>= 0). */
    int32_t dilation_h;   /**< Vertical dilation (>= 1). */
    int32_t dilation_w;   /**< Horizontal dilation (>= 1). */
    int32_t groups;       /**< in_channels and out_channels must both divide by it. */
    int32_t in_h;         /**< Input height. */
    int32_t in_w;         /**< Input width. */
    int32_t out_h;        /**< Output height; 0 = derive from the fields above. */
    int32_t out_w;        /**< Output width; 0 = derive from the fields above. */
    int32_t batch;        /**< Batch the costs are computed for (>= 1). */
    /** Nonzero when the layer has a bias vector (out_channels parameters). Describes the
     * architecture for parameter counts; mpq_layer_shape_conv() sets 0, mpq_layer_shape_fc() 1
     * (torchvision's conv-BN networks have no conv bias, nn.Linear has one). Callers passing
     * the shorter 0.1 draft struct (size without this field) get 0. */
    int32_t has_bias;
    /** Nonzero when a batch norm follows the layer: 2*out_channels learnable parameters
     * (scale and shift; running statistics are buffers, not parameters, as in torchvision). */
    int32_t has_batchnorm;
} mpq_layer_shape;

/**
 * Fills the first s->size bytes of @p s for a convolution (dilation 1, batch 1, output size
 * derived, no bias, no batch norm); the caller sets s->size first. Shape errors are reported
 * when the layer is added. Most callers use mpq_layer_shape_conv().
 */
MPQ_API mpq_status mpq_layer_shape_set_conv(mpq_layer_shape *s, int32_t in_channels,
                                            int32_t out_channels, int32_t kernel, int32_t stride,
                                            int32_t pad, int32_t groups, int32_t in_h,
                                            int32_t in_w);

/** As mpq_layer_shape_set_conv() for a fully connected layer (batch 1, with bias, no batch
 * norm). */
MPQ_API mpq_status mpq_layer_shape_set_fc(mpq_layer_shape *s, int32_t in_features,
                                          int32_t out_features);

/** Sets s->size to this program's sizeof(mpq_layer_shape), then mpq_layer_shape_set_conv(). */
static inline mpq_status mpq_layer_shape_conv(mpq_layer_shape *s, int32_t in_channels,
                                              int32_t out_channels, int32_t kernel,
                                              int32_t stride, int32_t pad, int32_t groups,
                                              int32_t in_h, int32_t in_w)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_layer_shape_conv: s is NULL");
    memset(s, 0, sizeof *s);
    s->size = sizeof *s;
    return mpq_layer_shape_set_conv(s, in_channels, out_channels, kernel, stride, pad, groups,
                                    in_h, in_w);
}

/** Sets s->size to this program's sizeof(mpq_layer_shape), then mpq_layer_shape_set_fc(). */
static inline mpq_status mpq_layer_shape_fc(mpq_layer_shape *s, int32_t in_features,
                                            int32_t out_features)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_layer_shape_fc: s is NULL");
    memset(s, 0, sizeof *s);
    s->size = sizeof *s;
    return mpq_layer_shape_set_fc(s, in_features, out_features);
}

/** Opaque model: an ordered list of quantizable layers. */
typedef struct mpq_model mpq_model;

/** Creates an empty model named @p name (1..127 bytes of UTF-8; used in policy files to match
 * models). */
MPQ_API mpq_status mpq_model_create(mpq_model **out, const char *name);

/** Destroys a model. NULL is a no-op. */
MPQ_API void mpq_model_destroy(mpq_model *m);

/** Deep copy (shapes and weights). */
MPQ_API mpq_status mpq_model_clone(mpq_model **out, const mpq_model *m);

/**
 * Creates a zoo network with ImageNet shapes (224x224 input, batch 1, no weights), layers in
 * torchvision module order: "resnet18", "resnet50", "mobilenetv1", "mobilenetv2",
 * "squeezenet1_0", "squeezenet1_1". ::MPQ_ERR_NOT_FOUND lists the valid names.
 */
MPQ_API mpq_status mpq_model_zoo(mpq_model **out, const char *name);

/** Number of zoo networks; with mpq_model_zoo_name() lets tools list them. */
MPQ_API size_t mpq_model_zoo_count(void);

/** Name of zoo network @p index (static string), NULL when out of range. */
MPQ_API const char *mpq_model_zoo_name(size_t index);

/**
 * Appends a layer after validating its shape: channels divisible by groups, positive sizes, an
 * output size >= 1 (and equal to the derived one when given). Errors name the layer and field.
 * Names are unique within a model (1..127 bytes of UTF-8). Sizes are bounded so that every count
 * stays exact in int64: at most 2^40 weights and 2^52 multiply-accumulates per layer, 2^48
 * weights and 2^60 multiply-accumulates per model (::MPQ_ERR_INVALID_ARGUMENT).
 */
MPQ_API mpq_status mpq_model_add_layer(mpq_model *m, const char *name,
                                       const mpq_layer_shape *shape);

/** Sets the batch used for costs on every layer (>= 1). */
MPQ_API mpq_status mpq_model_set_batch(mpq_model *m, int32_t batch);

/** Model name (borrowed); NULL for a NULL handle. */
MPQ_API const char *mpq_model_get_name(const mpq_model *m);

/** Number of quantizable layers; 0 for a NULL handle (with mpq_last_error() set). */
MPQ_API size_t mpq_model_get_layer_count(const mpq_model *m);

/** Copies layer @p index's shape (with out_h/out_w derived) into @p shape (size set by caller). */
MPQ_API mpq_status mpq_model_get_layer_shape(const mpq_model *m, size_t index,
                                         mpq_layer_shape *shape);

/** Layer name (borrowed); NULL for a NULL handle or an index out of range. */
MPQ_API const char *mpq_model_get_layer_name(const mpq_model *m, size_t index);

/** Index of the layer called @p name. */
MPQ_API mpq_status mpq_model_find_layer(const mpq_model *m, const char *name, size_t *index);

/** Multiply-accumulates of one layer for batch 1 (-1 for a NULL handle or an index out of range). */
MPQ_API int64_t mpq_model_get_layer_macs(const mpq_model *m, size_t index);

/** Weight count of one layer, bias excluded (-1 for a NULL handle or an index out of range). */
MPQ_API int64_t mpq_model_get_layer_weight_count(const mpq_model *m, size_t index);

/** Kernel (output channel) count of one layer (-1 for a NULL handle or an index out of range). */
MPQ_API int64_t mpq_model_get_layer_kernel_count(const mpq_model *m, size_t index);

/**
 * Totals over all layers (batch 1): MACs, weights, kernels, and declared biases (has_bias).
 * Any output may be NULL.
 */
MPQ_API mpq_status mpq_model_get_totals(const mpq_model *m, int64_t *macs, int64_t *weights,
                                    int64_t *kernels, int64_t *biases);

/**
 * Learnable parameters of the model as torchvision counts them (sum of
 * `p.numel() for p in model.parameters()`): weights + declared biases (has_bias) +
 * 2 * out_channels per batch norm (has_batchnorm).
 */
MPQ_API mpq_status mpq_model_get_param_count(const mpq_model *m, int64_t *params);

/**
 * Attaches float32 weights (copied; layout [out][in/groups][kh][kw], i.e. kernel-major) and an
 * optional bias (out_channels values, NULL for none). NaN/Inf refused with the first bad index.
 */
MPQ_API mpq_status mpq_model_set_weights(mpq_model *m, size_t index, const float *weights,
                                         int64_t weight_count, const float *bias,
                                         int64_t bias_count);

/** Borrowed weights of a layer (NULL and 0 when none are attached). Valid until changed. */
MPQ_API mpq_status mpq_model_get_weights(const mpq_model *m, size_t index, const float **weights,
                                     int64_t *weight_count, const float **bias,
                                     int64_t *bias_count);

/** 1 when the model has at least one layer and every layer has weights, 0 when not, -1 for a
 * NULL handle. */
MPQ_API int mpq_model_has_weights(const mpq_model *m);

/** Saves shapes and weights to a container file (atomic). */
MPQ_API mpq_status mpq_model_save(const mpq_model *m, const char *path);

/** Loads a model written by mpq_model_save(); shapes re-validated, damage -> ::MPQ_ERR_FORMAT. */
MPQ_API mpq_status mpq_model_load(mpq_model **out, const char *path);

/* ------------------------------------------------------------------------------------------ */
/** @name Policies
 * @{ */

/** Opaque policy for one model: activation bits per layer, weight bits per kernel. */
typedef struct mpq_policy mpq_policy;

/** Every kernel @p weight_bits, every layer @p act_bits. The policy records the model's layout. */
MPQ_API mpq_status mpq_policy_create_uniform(mpq_policy **out, const mpq_model *m,
                                             int weight_bits, int act_bits);

/** Layer-wise: arrays of mpq_model_get_layer_count() entries. */
MPQ_API mpq_status mpq_policy_create_layerwise(mpq_policy **out, const mpq_model *m,
                                               const uint8_t *weight_bits,
                                               const uint8_t *act_bits);

/**
 * Kernel-wise: @p kernel_bits holds every kernel of layer 0, then layer 1, ... (the total kernel
 * count of the model, @p kernel_count), @p act_bits one entry per layer.
 */
MPQ_API mpq_status mpq_policy_create_kernelwise(mpq_policy **out, const mpq_model *m,
                                                const uint8_t *kernel_bits, int64_t kernel_count,
                                                const uint8_t *act_bits);

/** Deep copy. */
MPQ_API mpq_status mpq_policy_clone(mpq_policy **out, const mpq_policy *p);

/** Destroys a policy. NULL is a no-op. */
MPQ_API void mpq_policy_destroy(mpq_policy *p);

/** Number of layers the policy covers; 0 for a NULL handle (with mpq_last_error() set). */
MPQ_API size_t mpq_policy_get_layer_count(const mpq_policy *p);

/** Total kernels covered (sum over layers); -1 for a NULL handle. */
MPQ_API int64_t mpq_policy_get_kernel_count(const mpq_policy *p);

/** Checks that @p p was made for a model with @p m's layer count, kernel counts and names. */
MPQ_API mpq_status mpq_policy_check_model(const mpq_policy *p, const mpq_model *m);

/** Activation bits of a layer. */
MPQ_API mpq_status mpq_policy_get_act_bits(const mpq_policy *p, size_t layer, int *bits);

/** Sets a layer's activation bits. */
MPQ_API mpq_status mpq_policy_set_act_bits(mpq_policy *p, size_t layer, int bits);

/**
 * Borrowed per-kernel weight bits of a layer (@p count kernels), valid until the policy changes.
 */
MPQ_API mpq_status mpq_policy_get_weight_bits(const mpq_policy *p, size_t layer,
                                          const uint8_t **bits, int64_t *count);

/** Sets every kernel of a layer to @p bits. */
MPQ_API mpq_status mpq_policy_set_layer_weight_bits(mpq_policy *p, size_t layer, int bits);

/** Sets one kernel's bits. */
MPQ_API mpq_status mpq_policy_set_kernel_bits(mpq_policy *p, size_t layer, int64_t kernel,
                                              int bits);

/** Copies a layer's kernel bits from @p bits (@p count must equal the layer's kernel count). */
MPQ_API mpq_status mpq_policy_set_kernel_bits_array(mpq_policy *p, size_t layer,
                                                    const uint8_t *bits, int64_t count);

/** 1 when the two policies hold identical bits and layout (figures are not compared), 0 when
 * not, -1 when either is NULL. */
MPQ_API int mpq_policy_equal(const mpq_policy *a, const mpq_policy *b);

/**
 * Stable 64-bit hash of the layout and all bits (FNV-1a over a fixed little-endian encoding):
 * equal policies hash equally on every machine and version 0.x; used to cache evaluations.
 */
MPQ_API uint64_t mpq_policy_hash(const mpq_policy *p);

/** Mean weight bits of a layer's kernels weighted by kernel size (all kernels of a layer agree in size). */
MPQ_API mpq_status mpq_policy_get_layer_avg_weight_bits(const mpq_policy *p, size_t layer,
                                                    double *avg);

/**
 * Mean weight bits of the network weighted by weight count. The policy records the weight counts
 * itself; when @p m is given it is first checked with mpq_policy_check_model() (NULL skips that).
 */
MPQ_API mpq_status mpq_policy_get_avg_weight_bits(const mpq_policy *p, const mpq_model *m,
                                              double *avg);

/** Optional measured figures stored with a policy in its JSON file. NaN = not measured; a
 * measured accuracy lies in [0, 1] and a measured cost is finite and >= 0 (the setter, the writer
 * and the reader refuse anything else). */
typedef struct mpq_policy_figures {
    size_t size;      /**< sizeof(mpq_policy_figures). */
    double accuracy;  /**< Top-1 in [0,1]. */
    double latency;   /**< Seconds. */
    double energy;    /**< Joules. */
    double area;      /**< LUTs (target-specific area unit). */
    double size_bytes;/**< Model size in bytes. */
} mpq_policy_figures;

/** Attaches measured figures (copied); a figure outside its documented range (see
 * ::mpq_policy_figures) gives ::MPQ_ERR_INVALID_ARGUMENT naming it and its value. */
MPQ_API mpq_status mpq_policy_set_figures(mpq_policy *p, const mpq_policy_figures *f);

/** Reads the figures (all NaN when none were set). */
MPQ_API mpq_status mpq_policy_get_figures(const mpq_policy *p, mpq_policy_figures *f);

/**
 * Serialises to the JSON policy format ("format": "mpq-policy", version 1, model name, per layer:
 * name, shape summary, activation bits, weight bits run-length encoded as [[bits, count], ...]),
 * figures if set. Free @p *json with mpq_free().
 */
MPQ_API mpq_status mpq_policy_to_json(const mpq_policy *p, const mpq_model *m, char **json);

/**
 * Parses a policy for model @p m. Malformed JSON, a policy for another model (model name, layer
 * count, layer names, kernel counts, or kind/in_channels/kernel/groups when present differ), bits
 * out of range, run lengths that do not cover the layer, or figures outside their documented ranges
 * (::mpq_policy_figures) give ::MPQ_ERR_FORMAT with the JSON path of the problem and the value in
 * the message ("layers[3].weight_bits[0][1]", "figures.latency: -5 is ..."); another version gives
 * ::MPQ_ERR_VERSION. Unknown keys are ignored.
 */
MPQ_API mpq_status mpq_policy_from_json(mpq_policy **out, const mpq_model *m, const char *json);

/** mpq_policy_to_json() written atomically to @p path; like mpq_policy_to_json() it refuses
 * (::MPQ_ERR_INVALID_ARGUMENT) a policy the reader would refuse. */
MPQ_API mpq_status mpq_policy_save(const mpq_policy *p, const mpq_model *m, const char *path);

/** Reads and parses a policy file for model @p m. */
MPQ_API mpq_status mpq_policy_load(mpq_policy **out, const mpq_model *m, const char *path);

/**
 * Parses "uniform:W,A" (e.g. "uniform:4,4") or a path to a policy JSON file — the form the
 * command line accepts everywhere.
 */
MPQ_API mpq_status mpq_policy_from_spec(mpq_policy **out, const mpq_model *m, const char *spec);

/** @} */


/* ------------------------------------------------------------------------------------------ */
/** @name Imported graphs (ONNX)
 * A user's CNN read from an ONNX file, lowered to the operations libmpq runs: convolutions
 * (any groups), fully connected layers, batch normalisation, ReLU / ReLU6, max / average /
 * global average pooling, residual adds and flattening, in topological order, with their
 * float parameters. Constant subgraphs (Shape, Gather, Unsqueeze, Concat, Reshape of constants,
 * Identity, Constant, Cast) are folded while loading. mpq_graph_to_model() gives its quantizable
 * layers (the model for policies, costs and the quantizer); the runtime builds an executable
 * network from it (mpq_net_from_graph() in runtime.h).
 *
 * Requires a build with ONNX support (meson option `onnx`, on by default when protobuf-c and
 * onnx.proto are installed); otherwise every loader returns ::MPQ_ERR_UNSUPPORTED.
 * @{ */

/** Operation of a graph node; the values equal the runtime's ::mpq_net_op. */
typedef enum mpq_graph_op {
    MPQ_GRAPH_CONV = 1,           /**< 2-D convolution (square kernel, stride, symmetric pad). */
    MPQ_GRAPH_BATCHNORM = 2,      /**< Inference batch normalisation (tensors scale, shift, mean, var). */
    MPQ_GRAPH_RELU = 3,           /**< max(x, 0). */
    MPQ_GRAPH_RELU6 = 4,          /**< min(max(x, 0), 6) (ONNX Clip with min 0, max 6). */
    MPQ_GRAPH_MAXPOOL = 5,        /**< Max pooling. */
    MPQ_GRAPH_AVGPOOL = 6,        /**< Average pooling, padding excluded from the mean. */
    MPQ_GRAPH_GLOBAL_AVGPOOL = 7, /**< Mean over the spatial extent. */
    MPQ_GRAPH_FC = 8,             /**< Fully connected (Gemm, or MatMul with its Add bias). */
    MPQ_GRAPH_ADD = 9,            /**< Elementwise sum of two nodes' outputs of the same shape. */
    MPQ_GRAPH_FLATTEN = 10,       /**< C x H x W to C*H*W features (Flatten, Reshape). */
} mpq_graph_op;

/** Parameter tensors of a graph node (mpq_graph_get_tensor()). */
typedef enum mpq_graph_tensor {
    MPQ_GRAPH_WEIGHT = 0,   /**< Conv [out][in/groups][k][k]; FC [out][in], inputs in ONNX
                                 (c, h, w) order. */
    MPQ_GRAPH_BIAS = 1,     /**< Conv and FC bias (out values), absent when the node has none. */
    MPQ_GRAPH_BN_SCALE = 2, /**< Batch norm gamma. */
    MPQ_GRAPH_BN_SHIFT = 3, /**< Batch norm beta. */
    MPQ_GRAPH_BN_MEAN = 4,  /**< Batch norm running mean. */
    MPQ_GRAPH_BN_VAR = 5,   /**< Batch norm running variance. */
} mpq_graph_tensor;

/** Description of one graph node. Plain data; grows only at the end; the caller sets @p size. */
typedef struct mpq_graph_node {
    size_t size;          /**< sizeof(mpq_graph_node), set by the caller. */
    mpq_graph_op op;      /**< Operation. */
    int32_t input;        /**< Index of the node producing the input; -1: the graph input. */
    int32_t input2;       /**< ::MPQ_GRAPH_ADD: the second input node (-1: the graph input);
                               -1 for other operations. */
    int32_t out_channels; /**< Conv output channels, FC output features (0 otherwise). */
    int32_t kernel;       /**< Conv and pooling: square kernel. */
    int32_t stride;       /**< Conv and pooling: stride. */
    int32_t pad;          /**< Conv and pooling: padding on every side. */
    int32_t groups;       /**< Conv: groups. */
    int32_t bias;         /**< Conv and FC: nonzero when a bias tensor is attached. */
    int32_t in_c;         /**< Input channels (FC: of the map before flattening). */
    int32_t in_h;         /**< Input height (FC: of the map before flattening). */
    int32_t in_w;         /**< Input width (FC: of the map before flattening). */
    int32_t out_c;        /**< Output channels (features for FC and flatten). */
    int32_t out_h;        /**< Output height (1 after FC and flatten). */
    int32_t out_w;        /**< Output width (1 after FC and flatten). */
    int32_t layer;        /**< Index of the node's quantizable layer in mpq_graph_to_model()
                               (conv and FC), -1 otherwise. */
    int32_t source_node;  /**< Index of the ONNX node it came from in the file's graph. */
    float epsilon;        /**< Batch norm epsilon. */
} mpq_graph_node;

/** Opaque imported graph. */
typedef struct mpq_graph mpq_graph;

/** Largest number of nodes of an ONNX graph the importer reads. */
#define MPQ_GRAPH_MAX_ONNX_NODES 100000
/** Largest number of lowered nodes of a graph. */
#define MPQ_GRAPH_MAX_NODES 4096
/** Largest element count of one tensor (2^31). */
#define MPQ_GRAPH_MAX_ELEMENTS ((int64_t)1 << 31)
/** Largest extent (channels, height, width) of any activation. */
#define MPQ_GRAPH_MAX_EXTENT 65536
/** Largest rank of a tensor. */
#define MPQ_GRAPH_MAX_RANK 8

/**
 * Reads an ONNX model file (at most 2 GiB; tensors stored inline). The graph needs one float
 * input N x C x H x W (N may be symbolic: costs are per image) and one output, the class
 * scores. Refused with a message naming the node and what is wrong: an operator or attribute
 * this importer does not lower (::MPQ_ERR_UNSUPPORTED naming the op and node: non-square
 * kernels, asymmetric pads, dilations, ceil_mode pooling that changes the size, ...),
 * external-data or sparse tensors (::MPQ_ERR_UNSUPPORTED), a damaged or truncated file, missing
 * initializers or inputs, a cycle, tensors whose sizes disagree, dimensions beyond the
 * MPQ_GRAPH_MAX_* limits (::MPQ_ERR_FORMAT).
 * @param out receives the graph.
 * @param path the .onnx file; the graph is named after its base name without ".onnx".
 */
MPQ_API mpq_status mpq_graph_load_onnx(mpq_graph **out, const char *path);

/** mpq_graph_load_onnx() from a buffer; @p name (1..63 bytes) names the graph. */
MPQ_API mpq_status mpq_graph_from_onnx_memory(mpq_graph **out, const void *data, size_t size,
                                              const char *name);

/** Destroys a graph. NULL is a no-op. */
MPQ_API void mpq_graph_destroy(mpq_graph *g);

/** Graph name (borrowed, valid while @p g lives). */
MPQ_API mpq_status mpq_graph_get_name(const mpq_graph *g, const char **name);

/** Input shape: channels, height, width (any output may be NULL). */
MPQ_API mpq_status mpq_graph_get_input(const mpq_graph *g, int32_t *channels, int32_t *height,
                                       int32_t *width);

/** Number of lowered nodes; the last one produces the class scores. */
MPQ_API mpq_status mpq_graph_get_node_count(const mpq_graph *g, size_t *count);

/** Describes node @p index (the caller sets @p node->size). */
MPQ_API mpq_status mpq_graph_get_node(const mpq_graph *g, size_t index, mpq_graph_node *node);

/** Name of node @p index (borrowed; 1..63 bytes, unique): the ONNX node name when it fits. */
MPQ_API mpq_status mpq_graph_get_node_name(const mpq_graph *g, size_t index, const char **name);

/** Borrowed parameter tensor of a node (NULL and 0 when the node has none of that kind). */
MPQ_API mpq_status mpq_graph_get_tensor(const mpq_graph *g, size_t index, mpq_graph_tensor which,
                                        const float **data, int64_t *count);

/**
 * The quantizable layers (conv and FC nodes, in node order) as a model named like the graph,
 * with their weights and biases attached; has_batchnorm is set for a conv whose output goes only
 * into a batch norm. FC weights keep the ONNX (c, h, w) input order.
 */
MPQ_API mpq_status mpq_graph_to_model(mpq_model **out, const mpq_graph *g);

/** mpq_graph_load_onnx() then mpq_graph_to_model(). */
MPQ_API mpq_status mpq_model_load_onnx(mpq_model **out, const char *path);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Evaluators
 * The contract between whatever measures accuracy (the built-in oneDNN runtime, a user's C or
 * Python callback) and the search: given a policy for the search's model, store the top-1
 * accuracy in [0,1] in @p *accuracy and return ::MPQ_OK; any other status stops the run and is
 * reported with the evaluator's mpq_set_error() message. A short fine-tune, if any, happens inside
 * the evaluator and must not change the model the next call starts from.
 * @{ */

/** Evaluator callback. */
typedef mpq_status (*mpq_evaluator_fn)(void *user, const mpq_policy *policy, double *accuracy);

/** @} */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_MODEL_H */
