/**
 * @file runtime.h
 * @brief The built-in oneDNN runtime: IDX datasets (Fashion-MNIST by default), a small CNN
 * network handle that trains, evaluates and fine-tunes on them, and the built-in evaluator that
 * measures the accuracy of a quantization policy for the search.
 *
 * Data flow: an ::mpq_dataset holds the images (uint8) and labels of the train, validation and
 * test splits. An ::mpq_net is a sequence of layers (convolution with any groups, batch
 * normalisation, ReLU / ReLU6, max / average / global average pooling, fully connected, residual
 * add, flatten) ending in logits trained with softmax cross-entropy; forward and backward run
 * through oneDNN 2.6 primitives that are created once per batch size and reused. Its convolutions
 * and fully connected layers are its quantizable layers, exposed as an ::mpq_model
 * (mpq_net_to_model()) so that policies, the quantizer and the hardware models use them unchanged.
 *
 * Quantization: with a policy installed (mpq_net_set_policy()) every forward pass uses weights
 * fake-quantized per kernel at the policy's bits, equal to what the kernel-wise quantizer gives
 * (mpq_quantizer_apply_layer() with its default linear min-max settings) on the float weights,
 * which are kept; they are computed once per installed policy and weights, not per batch
 * and activations fake-quantized at the input of every quantizable layer at the policy's
 * activation bits, over ranges calibrated on a few training batches (mpq_net_calibrate()).
 * Training with a policy installed is quantization-aware fine-tuning with the straight-through
 * estimator: gradients of the quantized forward update the float weights.
 *
 * The evaluator (::mpq_evaluator) owns a private copy of a trained network; every evaluation
 * starts from the trained weights, optionally fine-tunes for a few batches, and reports top-1
 * accuracy on the validation split. It caches results by mpq_policy_hash() and plugs into the
 * search through mpq_evaluator_callback(), whose signature is ::mpq_evaluator_fn.
 *
 * Thread safety: a handle is used by one thread at a time; different handles may be used from
 * different threads. A dataset is read-only after creation and may be shared by several networks
 * and evaluators, also across threads. oneDNN runs on OpenMP; the thread count of a network is
 * ::MPQ_NET_THREADS (of an evaluator ::MPQ_EVAL_THREADS), by default the CPUs the calling thread
 * may run on. The library sets OpenMP's thread count of the calling thread around each oneDNN
 * call and restores it afterwards.
 *
 * Determinism: the same seed and data give bit-identical results whatever the thread count:
 * the primitives whose sums depend on it (batch-norm statistics and gradients, convolution
 * weight gradients, inner products) always run on one thread. oneDNN picks its kernels by CPU
 * instruction set, so results are reproducible across machines with the same ISA (set
 * ONEDNN_MAX_CPU_ISA, e.g. AVX2, to match a machine with a wider one).
 *
 * @since 0.1.0
 */
#ifndef MPQ_RUNTIME_H
#define MPQ_RUNTIME_H

#include <mpq/core.h>
#include <mpq/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup runtime Runtime (oneDNN)
 * Datasets, networks, training, quantized evaluation and the built-in evaluator.
 * @{ */

/* ------------------------------------------------------------------------------------------ */
/** @name Datasets
 * @{ */

/** Directory of the Debian package dataset-fashion-mnist, the default data source. */
#define MPQ_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/** Number of training images held out as the validation split (the last ones of the file). */
#define MPQ_DEFAULT_VAL_COUNT 5000

/** A part of a dataset. */
typedef enum mpq_split {
    MPQ_SPLIT_TRAIN = 0, /**< Training images minus the validation tail. */
    MPQ_SPLIT_VAL = 1,   /**< The last validation-count training images: search rewards. */
    MPQ_SPLIT_TEST = 2,  /**< The test file: final reports only. */
} mpq_split;

/** Opaque labelled image dataset (uint8 pixels, class labels), read-only once created. */
typedef struct mpq_dataset mpq_dataset;

/**
 * Loads the four IDX files of the MNIST family from @p dir (NULL: ::MPQ_FASHION_MNIST_DIR):
 * train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
 * t10k-labels-idx1-ubyte, each with or without a .gz suffix. The last ::MPQ_DEFAULT_VAL_COUNT
 * training images form the validation split.
 * @param out receives the dataset (destroy with mpq_dataset_destroy()).
 * @param dir directory holding the files, or NULL for the default.
 */
MPQ_API mpq_status mpq_dataset_load(mpq_dataset **out, const char *dir);

/**
 * Loads a dataset from four explicit IDX files (gzipped or not). Magic numbers, ranks, extents
 * and sizes are validated; a truncated or foreign file gives ::MPQ_ERR_FORMAT naming the file
 * and the field. Image channels, height and width are at most 4096 (as for
 * mpq_dataset_create_memory()); labels must lie in 0..254 (a 255 is refused naming the file and
 * the index); the class count is the largest label plus one.
 * @param out receives the dataset.
 * @param train_images IDX3 (or IDX4: N x C x H x W) uint8 training images.
 * @param train_labels IDX1 uint8 training labels, same count.
 * @param test_images IDX uint8 test images, same image shape as the training images.
 * @param test_labels IDX1 uint8 test labels.
 * @param val_count training images (the last ones) that form the validation split,
 *        0 <= val_count < training count.
 */
MPQ_API mpq_status mpq_dataset_load_idx(mpq_dataset **out, const char *train_images,
                                        const char *train_labels, const char *test_images,
                                        const char *test_labels, int64_t val_count);

/**
 * Creates a dataset from memory (copied), e.g. for tests and examples.
 * @param out receives the dataset.
 * @param images (train_count + test_count) images of channels*height*width uint8 pixels each,
 *        C x H x W order, the training images first.
 * @param labels (train_count + test_count) labels in 0..254, training first.
 * @param train_count training images (>= 1, including the validation tail).
 * @param test_count test images (>= 0).
 * @param channels image channels (>= 1).
 * @param height image height (>= 1).
 * @param width image width (>= 1).
 * @param val_count last training images used as validation split, 0 <= val_count < train_count.
 */
MPQ_API mpq_status mpq_dataset_create_memory(mpq_dataset **out, const uint8_t *images,
                                             const uint8_t *labels, int64_t train_count,
                                             int64_t test_count, int32_t channels,
                                             int32_t height, int32_t width, int64_t val_count);

/** Destroys a dataset. NULL is a no-op. @param ds the dataset. */
MPQ_API void mpq_dataset_destroy(mpq_dataset *ds);

/**
 * Number of images in a split.
 * @param ds the dataset.
 * @param split which split.
 * @param count receives the count.
 */
MPQ_API mpq_status mpq_dataset_get_count(const mpq_dataset *ds, mpq_split split, int64_t *count);

/**
 * Image shape and class count.
 * @param ds the dataset.
 * @param channels receives the channel count (may be NULL).
 * @param height receives the height (may be NULL).
 * @param width receives the width (may be NULL).
 * @param classes receives the class count (may be NULL).
 */
MPQ_API mpq_status mpq_dataset_get_shape(const mpq_dataset *ds, int32_t *channels, int32_t *height,
                                     int32_t *width, int32_t *classes);

/**
 * One sample of a split.
 * @param ds the dataset.
 * @param split which split.
 * @param index 0-based index inside the split.
 * @param pixels receives a borrowed pointer to C*H*W uint8 pixels, valid while @p ds lives.
 * @param label receives the class label.
 */
MPQ_API mpq_status mpq_dataset_sample(const mpq_dataset *ds, mpq_split split, int64_t index,
                                      const uint8_t **pixels, int *label);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Networks
 * @{ */

/** Largest input height or width, kernel, stride and pad, and output height or width of any layer
 * of an ::mpq_net. */
#define MPQ_NET_MAX_EXTENT 4096
/** Largest channel count of a network's input. */
#define MPQ_NET_MAX_INPUT_CHANNELS 4096
/** Largest out_channels of a convolution or fully connected layer. */
#define MPQ_NET_MAX_OUT_CHANNELS 65536
/** Largest number of values (channels x height x width) of the input or any layer's output, per
 * image (2^28: 1 GiB of floats). */
#define MPQ_NET_MAX_VALUES ((int64_t)1 << 28)
/** Largest weight count of one layer (2^31). */
#define MPQ_NET_MAX_WEIGHTS ((int64_t)1 << 31)
/** Largest multiply-accumulate count of one layer per image (2^40). */
#define MPQ_NET_MAX_MACS ((int64_t)1 << 40)
/** Largest number of layers of a network. */
#define MPQ_NET_MAX_LAYERS 4096

/** Kind of a network layer. */
typedef enum mpq_net_op {
    MPQ_OP_CONV = 1,        /**< 2-D convolution, any groups (groups == channels: depthwise). */
    MPQ_OP_BATCHNORM = 2,   /**< Batch normalisation with learned scale and shift. */
    MPQ_OP_RELU = 3,        /**< max(x, 0). */
    MPQ_OP_RELU6 = 4,       /**< min(max(x, 0), 6) (MobileNetV2). */
    MPQ_OP_MAXPOOL = 5,     /**< Max pooling (kernel, stride, pad). */
    MPQ_OP_AVGPOOL = 6,     /**< Average pooling, padding excluded from the mean. */
    MPQ_OP_GLOBAL_AVGPOOL = 7, /**< Average over the whole spatial extent (output 1x1). */
    MPQ_OP_FC = 8,          /**< Fully connected (inner product) over all input features. */
    MPQ_OP_ADD = 9,         /**< Residual add of two layers' outputs of the same shape. */
    MPQ_OP_FLATTEN = 10,    /**< Reshapes C x H x W into C*H*W features (no computation). */
} mpq_net_op;

/**
 * Description of one layer to add with mpq_net_add(). Plain data; grows only at the end; fill
 * with mpq_net_layer_init() and change the fields the layer needs.
 */
typedef struct mpq_net_layer {
    size_t size;          /**< sizeof(mpq_net_layer). */
    mpq_net_op op;        /**< Layer kind. */
    int32_t input;        /**< Index of the input layer; -1: the previous layer (or the image). */
    int32_t input2;       /**< ::MPQ_OP_ADD only: index of the second input layer. */
    int32_t out_channels; /**< ::MPQ_OP_CONV: output channels; ::MPQ_OP_FC: output features. */
    int32_t kernel;       /**< Conv and pooling: square kernel size. */
    int32_t stride;       /**< Conv and pooling: stride. */
    int32_t pad;          /**< Conv and pooling: zero padding on each side. */
    int32_t groups;       /**< Conv: groups (1 = dense; in channels = depthwise). */
    int32_t bias;         /**< Conv and FC: nonzero to learn a bias. */
} mpq_net_layer;

/**
 * Fills the first layer->size bytes of @p layer with the defaults for @p op: input -1, kernel 3,
 * stride 1, pad 1, groups 1, bias 0 for conv; kernel 2 stride 2 pad 0 for pooling; bias 1 for
 * FC. The caller sets layer->size first; most callers use mpq_net_layer_init().
 * @param layer the description to fill.
 * @param op the layer kind.
 */
MPQ_API mpq_status mpq_net_layer_defaults(mpq_net_layer *layer, mpq_net_op op);

/**
 * Sets layer->size to this program's sizeof(mpq_net_layer), then mpq_net_layer_defaults().
 * @param layer the description to fill.
 * @param op the layer kind.
 */
static inline mpq_status mpq_net_layer_init(mpq_net_layer *layer, mpq_net_op op)
{
    if (!layer)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_layer_init: layer is NULL");
    memset(layer, 0, sizeof *layer);
    layer->size = sizeof *layer;
    return mpq_net_layer_defaults(layer, op);
}

/** Opaque network: layers, float parameters, optimizer state and the oneDNN primitives. */
typedef struct mpq_net mpq_net;

/**
 * Creates an empty network for C x H x W inputs and @p classes outputs.
 * @param out receives the network.
 * @param channels input channels (1..::MPQ_NET_MAX_INPUT_CHANNELS).
 * @param height input height (1..::MPQ_NET_MAX_EXTENT).
 * @param width input width (1..::MPQ_NET_MAX_EXTENT); C x H x W at most ::MPQ_NET_MAX_VALUES.
 * @param classes number of classes, 2..100000 (the last layer must produce this many features).
 * @param seed seeds the per-handle generator (weight initialisation, shuffling).
 */
MPQ_API mpq_status mpq_net_create(mpq_net **out, int32_t channels, int32_t height,
                                  int32_t width, int32_t classes, uint64_t seed);

/**
 * Creates a built-in network for 1 x 28 x 28 inputs and 10 classes: "fashion-cnn" (the demo: a
 * MobileNet-style CNN with depthwise-separable blocks, two residual adds and 10 quantizable
 * layers) or "fashion-tiny" (5 quantizable layers, one residual add, for tests).
 * ::MPQ_ERR_NOT_FOUND lists the valid names.
 * @param out receives the network.
 * @param name network name.
 * @param seed initialisation seed.
 */
MPQ_API mpq_status mpq_net_create_named(mpq_net **out, const char *name, uint64_t seed);

/** Destroys a network and its primitives. NULL is a no-op. @param net the network. */
MPQ_API void mpq_net_destroy(mpq_net *net);

/**
 * Deep copy: layers, parameters, calibration, installed policy and hyper-parameters (not the
 * optimizer momentum, which restarts at zero).
 * @param net the network to copy.
 * @param out receives the copy.
 */
MPQ_API mpq_status mpq_net_clone(mpq_net **out, const mpq_net *net);

/**
 * Appends a layer, checking shapes (errors name the layer and field). Parameters are initialised
 * with He-normal weights (He et al., 2015), zero biases, unit BN scales. Sizes are bounded before
 * anything is allocated: kernel, stride and output height/width 1..::MPQ_NET_MAX_EXTENT,
 * 0 <= pad < kernel, out_channels 1..::MPQ_NET_MAX_OUT_CHANNELS, at most ::MPQ_NET_MAX_VALUES
 * output values, ::MPQ_NET_MAX_WEIGHTS weights and ::MPQ_NET_MAX_MACS multiply-accumulates per
 * layer, ::MPQ_NET_MAX_LAYERS layers (::MPQ_ERR_INVALID_ARGUMENT).
 * @param net the network.
 * @param name unique layer name (1..63 bytes of UTF-8), used in files and in the exposed model.
 * @param layer description (size set).
 * @param index receives the new layer's index (may be NULL).
 */
MPQ_API mpq_status mpq_net_add(mpq_net *net, const char *name, const mpq_net_layer *layer,
                               int32_t *index);

/** Number of layers. @param net the network. */
MPQ_API size_t mpq_net_get_layer_count(const mpq_net *net);

/**
 * Describes layer @p index.
 * @param net the network.
 * @param index 0-based layer index.
 * @param layer receives the description (size set by the caller).
 * @param out_shape receives the output C, H, W (may be NULL).
 */
MPQ_API mpq_status mpq_net_get_layer(const mpq_net *net, size_t index, mpq_net_layer *layer,
                                     int32_t out_shape[3]);

/** Name of layer @p index (borrowed), NULL when out of range. @param net the network.
 * @param index layer index. */
MPQ_API const char *mpq_net_get_layer_name(const mpq_net *net, size_t index);

/**
 * Number of float parameters (weights, biases, BN scale and shift) and multiply-accumulates of
 * one image through the network.
 * @param net the network.
 * @param params receives the parameter count (may be NULL).
 * @param macs receives the MACs per image (may be NULL).
 */
MPQ_API mpq_status mpq_net_get_stats(const mpq_net *net, int64_t *params, int64_t *macs);

/**
 * Exposes the quantizable layers (conv and FC, in network order) as a new model named after the
 * network ("fashion-cnn" for the demo), with shapes for batch 1 and the current float weights, so
 * that policies, the quantizer and the hardware models apply to it. Destroy with
 * mpq_model_destroy(). Activations are stored channels-last inside the runtime, so a fully
 * connected layer whose input is a C x H x W map (not 1 x 1) orders its input features as
 * (h, w, c).
 * @param net the network.
 * @param out receives the model.
 */
MPQ_API mpq_status mpq_net_to_model(const mpq_net *net, mpq_model **out);

/** Model name used by mpq_net_to_model() (borrowed). @param net the network. */
MPQ_API const char *mpq_net_get_name(const mpq_net *net);

/**
 * Saves the architecture (JSON header), parameters, BN running statistics and activation ranges
 * to a container file, atomically. Nothing is written that mpq_net_load() would refuse: a
 * parameter or activation range that is not finite (or a negative BN variance, or act_lo above
 * act_hi) gives ::MPQ_ERR_NUMERIC naming the layer; a network without layers or whose last layer
 * does not produce the class scores gives ::MPQ_ERR_STATE.
 * @param net the network.
 * @param path destination file.
 */
MPQ_API mpq_status mpq_net_save(const mpq_net *net, const char *path);

/**
 * Loads a network written by mpq_net_save(); every stored value is checked against the limits of
 * mpq_net_create() and mpq_net_add() before anything is allocated for it, every tensor's size
 * and values (finite, variances >= 0) and every activation range (finite floats, act_lo <=
 * act_hi) are checked, and a tensor that belongs to no layer is refused. Damage gives
 * ::MPQ_ERR_FORMAT with a message naming the file, the layer, the field and the value.
 * @param out receives the network.
 * @param path file to read.
 * @param seed seeds the new handle's generator.
 */
MPQ_API mpq_status mpq_net_load(mpq_net **out, const char *path, uint64_t seed);

/**
 * Builds a network from an imported graph (mpq_graph_load_onnx()): the graph's operations in
 * order with its parameters (batch-norm epsilons folded into the variances), named after the
 * graph, classes = the last operation's outputs. mpq_net_to_model() of the result matches
 * mpq_graph_to_model() in layer names, shapes and kernel counts, so policies for either apply to
 * both (FC weights differ only in input order, see mpq_net_to_model()). Limits as mpq_net_add();
 * a layer other than the first that reads the image gives ::MPQ_ERR_UNSUPPORTED.
 * @param out receives the network.
 * @param g the graph.
 * @param seed seeds the network's generator.
 */
MPQ_API mpq_status mpq_net_from_graph(mpq_net **out, const mpq_graph *g, uint64_t seed);

/**
 * mpq_graph_load_onnx() then mpq_net_from_graph(): a trained network from an ONNX file, ready
 * for mpq_net_evaluate(), mpq_evaluator_create() and the search. Inputs are the image pixels
 * scaled to [0, 1] (as for every mpq_net), so a model that normalises differently must do so in
 * its graph (and only the operations listed in model.h are read).
 * @param out receives the network.
 * @param path the .onnx file.
 * @param seed seeds the network's generator.
 */
MPQ_API mpq_status mpq_net_load_onnx(mpq_net **out, const char *path, uint64_t seed);

/**
 * Inference forward pass (BN with running statistics, installed policy applied).
 * @param net the network.
 * @param input @p batch images of C*H*W floats, already normalised.
 * @param batch images in the batch (>= 1).
 * @param logits receives batch x classes floats.
 */
MPQ_API mpq_status mpq_net_forward(mpq_net *net, const float *input, int32_t batch,
                                   float *logits);

/** Training hyper-parameters of a network (mpq_net_set_param()). */
typedef enum mpq_net_param {
    MPQ_NET_EPOCHS = 0,          /**< Epochs per mpq_net_train() call. */
    MPQ_NET_BATCH_SIZE = 1,      /**< Mini-batch size. */
    MPQ_NET_LR = 2,              /**< Initial learning rate. */
    MPQ_NET_MOMENTUM = 3,        /**< SGD momentum. */
    MPQ_NET_WEIGHT_DECAY = 4,    /**< L2 decay on conv/FC weights. */
    MPQ_NET_SCHEDULE = 5,        /**< 0 constant, 1 cosine, 2 step. */
    MPQ_NET_STEP_EPOCHS = 6,     /**< Step schedule: epochs between decays. */
    MPQ_NET_STEP_GAMMA = 7,      /**< Step schedule: decay factor. */
    MPQ_NET_MAX_BATCHES = 8,     /**< Stop after this many batches in total (0: no limit). */
    MPQ_NET_BN_MOMENTUM = 9,     /**< Running-statistics update rate of batch normalisation. */
    MPQ_NET_THREADS = 10,        /**< oneDNN threads; 0 (default): the CPUs the calling thread
                                      may run on (affinity mask), at most omp_get_max_threads().
                                      Training, fine-tuning and evaluation give the same bits for
                                      every value: the primitives whose sums depend on the thread
                                      count (batch-norm statistics and gradients, weight
                                      gradients, inner products) always run on one thread. */
} mpq_net_param;

/**
 * Sets a hyper-parameter (bounds from mpq_net_param_info()).
 * @param net the network.
 * @param id which parameter.
 * @param value new value.
 */
MPQ_API mpq_status mpq_net_set_param(mpq_net *net, mpq_net_param id, double value);

/**
 * Reads a hyper-parameter.
 * @param net the network.
 * @param id which parameter.
 * @param value receives the value.
 */
MPQ_API mpq_status mpq_net_get_param(const mpq_net *net, mpq_net_param id, double *value);

/**
 * Describes a hyper-parameter (name, source of the default, bounds).
 * @param id which parameter.
 * @param info receives the description (size set by the caller).
 */
MPQ_API mpq_status mpq_net_param_info(mpq_net_param id, mpq_param_info *info);

/**
 * Finds a hyper-parameter by name.
 * @param name parameter name ("lr").
 * @param id receives its id.
 */
MPQ_API mpq_status mpq_net_param_find(const char *name, mpq_net_param *id);

/** Progress of a training run, passed to the progress callback. Grows only at the end. */
typedef struct mpq_train_progress {
    size_t size;              /**< sizeof(mpq_train_progress). */
    int32_t epoch;            /**< 0-based epoch. */
    int32_t epochs;           /**< Epochs of the run. */
    int64_t batch;            /**< 0-based batch inside the epoch. */
    int64_t batches;          /**< Batches per epoch. */
    double loss;              /**< Mean cross-entropy of the epoch so far. */
    double accuracy;          /**< Training top-1 accuracy of the epoch so far. */
    double images_per_second; /**< Throughput of the epoch so far. */
    double lr;                /**< Learning rate of the current batch. */
} mpq_train_progress;

/**
 * Progress callback, called after every batch; a status other than ::MPQ_OK stops training with
 * ::MPQ_ERR_CANCELLED (the weights keep the last update).
 */
typedef mpq_status (*mpq_progress_fn)(void *user, const mpq_train_progress *progress);

/**
 * Installs a progress callback (NULL removes it).
 * @param net the network.
 * @param fn the callback.
 * @param user passed to @p fn.
 */
MPQ_API mpq_status mpq_net_set_progress(mpq_net *net, mpq_progress_fn fn, void *user);

/**
 * Trains with SGD (momentum, weight decay, schedule from the parameters) on a split, shuffling
 * every epoch with the network's generator. With a policy installed this is quantization-aware
 * fine-tuning with the straight-through estimator.
 * @param net the network.
 * @param ds the dataset (its image shape and classes must match the network).
 * @param split split to train on (normally ::MPQ_SPLIT_TRAIN).
 * @param final_loss receives the mean loss of the last epoch (may be NULL).
 */
MPQ_API mpq_status mpq_net_train(mpq_net *net, const mpq_dataset *ds, mpq_split split,
                                 double *final_loss);

/**
 * Top-1 accuracy on a split (inference mode; the installed policy, if any, applies).
 * @param net the network.
 * @param ds the dataset.
 * @param split which split.
 * @param limit evaluate only the first @p limit images (0: all).
 * @param accuracy receives the accuracy in [0, 1].
 */
MPQ_API mpq_status mpq_net_evaluate(mpq_net *net, const mpq_dataset *ds, mpq_split split,
                                    int64_t limit, double *accuracy);

/** How activation ranges are calibrated. */
typedef enum mpq_calib_method {
    MPQ_CALIB_MINMAX = 0,   /**< Smallest and largest value seen over all calibration batches. */
    MPQ_CALIB_MEAN_MAX = 1, /**< Mean over batches of each batch's min and max (less outlier-driven;
                                 TensorFlow's moving-average min/max observer). */
} mpq_calib_method;

/**
 * Calibrates the activation range at the input of every quantizable layer from float inference
 * on the first @p batches training batches (no policy applied while calibrating).
 * @param net the network.
 * @param ds the dataset.
 * @param batches number of batches of the network's batch size (>= 1).
 * @param method calibration method.
 */
MPQ_API mpq_status mpq_net_calibrate(mpq_net *net, const mpq_dataset *ds, int32_t batches,
                                     mpq_calib_method method);

/**
 * Calibrated activation range at the input of quantizable layer @p layer (the index in
 * mpq_net_to_model()), as mpq_net_calibrate() left it: what mpq_policy_export() needs to write
 * the activation grids the fake-quant path uses. ::MPQ_ERR_STATE before calibration.
 * @param net the network.
 * @param layer quantizable layer index.
 * @param lo receives the low end.
 * @param hi receives the high end.
 */
MPQ_API mpq_status mpq_net_get_act_range(const mpq_net *net, size_t layer, float *lo, float *hi);

/**
 * Installs a quantization policy (copied; NULL returns to float). The policy must match
 * mpq_net_to_model() (::MPQ_ERR_MISMATCH otherwise). Activations are quantized only if the
 * network was calibrated (::MPQ_ERR_STATE when a policy asks for fewer than 32 activation bits on
 * an uncalibrated network). Weights: symmetric linear per kernel, scale max|w| / (2^(b-1) - 1);
 * activations: linear over the calibrated range (unsigned when it starts at 0). With every bit
 * width <= 8 the policy can also run as real int8 inference (mpq_net_evaluate_int8()).
 * @param net the network.
 * @param policy the policy or NULL.
 */
MPQ_API mpq_status mpq_net_set_policy(mpq_net *net, const mpq_policy *policy);

/**
 * Result of real int8 inference of a policy (mpq_net_evaluate_int8()), compared with the
 * fake-quant path on the same images. Plain data; grows only at the end.
 */
typedef struct mpq_int8_report {
    size_t size;                        /**< sizeof(mpq_int8_report), set by the caller. */
    int64_t images;                     /**< Images evaluated. */
    double accuracy;                    /**< Top-1 accuracy of the int8 path, in [0, 1]. */
    double fakequant_accuracy;          /**< Top-1 accuracy of the fake-quant path, in [0, 1]. */
    double agreement;                   /**< Fraction of images whose int8 and fake-quant
                                             predictions (argmax) are identical. */
    double int8_images_per_second;      /**< Inference throughput of the int8 path. */
    double fakequant_images_per_second; /**< Inference throughput of the fake-quant path. */
    int32_t int8_layers;                /**< Quantizable layers run as int8 convolutions. */
    int32_t split_layers;               /**< Of those, layers with 8-bit inputs and 8-bit
                                             weights, run as two convolutions (see
                                             mpq_net_evaluate_int8()). */
} mpq_int8_report;

/**
 * Runs the installed policy as real int8 inference and compares it with the fake-quant path on
 * the same images. Every quantizable layer becomes a oneDNN int8 convolution (a fully connected
 * layer a 1x1 one): input codes on the policy's activation grid over the calibrated range
 * (unsigned; a signed grid is offset by 2^(b-1) through the source zero point), s8 weight codes
 * on each kernel's own grid (its bits and scale, exactly the fake-quant values), s32
 * accumulation and per-output-channel output scales s_x * s_w[k], then the f32 bias. Batch
 * normalisation, ReLU, pooling and residual adds stay the f32 primitives of the fake-quant path,
 * so the two paths differ only in floating-point rounding. On AVX2 without VNNI oneDNN adds pairs
 * of u8 x s8 products in saturating 16-bit lanes; a layer whose codes could overflow them (8-bit
 * inputs with 8-bit weights) splits its input codes x = 128 hi + lo into two convolutions whose
 * sum is exact. Throughputs time the forward passes only (batches of the network's batch size).
 * @param net a calibrated network with a policy installed whose weight and activation bits are
 *        all <= 8 (otherwise ::MPQ_ERR_INVALID_ARGUMENT naming the layer; no policy:
 *        ::MPQ_ERR_STATE).
 * @param ds the dataset.
 * @param split which split.
 * @param limit evaluate only the first @p limit images (0: all).
 * @param report receives the results (size set by the caller).
 */
MPQ_API mpq_status mpq_net_evaluate_int8(mpq_net *net, const mpq_dataset *ds, mpq_split split,
                                         int64_t limit, mpq_int8_report *report);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Evaluator
 * @{ */

/** Opaque built-in evaluator: a private copy of a trained network plus a dataset and a cache. */
typedef struct mpq_evaluator mpq_evaluator;

/** Evaluator parameters (mpq_evaluator_set_param()). */
typedef enum mpq_eval_param {
    MPQ_EVAL_FINETUNE_BATCHES = 0, /**< STE fine-tune batches per evaluation (0: none). */
    MPQ_EVAL_FINETUNE_LR = 1,      /**< Fine-tune learning rate (AutoQ: 1e-3). */
    MPQ_EVAL_FINETUNE_MOMENTUM = 2,/**< Fine-tune momentum (AutoQ: 0.9). */
    MPQ_EVAL_CALIB_BATCHES = 3,    /**< Training batches used to calibrate activation ranges. */
    MPQ_EVAL_CALIB_METHOD = 4,     /**< ::mpq_calib_method. */
    MPQ_EVAL_LIMIT = 5,            /**< Validation images evaluated (0: the whole split). */
    MPQ_EVAL_BATCH_SIZE = 6,       /**< Batch size for fine-tuning and calibration. */
    MPQ_EVAL_THREADS = 7,          /**< oneDNN threads of the evaluator's networks (initially the
                                        network's ::MPQ_NET_THREADS; 0: the CPUs the calling
                                        thread may run on). Accuracies do not depend on it. */
    MPQ_EVAL_BN_BATCHES = 8,       /**< Training batches run through the quantized network to
                                        re-estimate batch-norm statistics before scoring (0: the
                                        trained statistics). */
} mpq_eval_param;

/**
 * Creates an evaluator over a private copy of @p net (which may be destroyed afterwards) and a
 * borrowed dataset that must outlive the evaluator. Activation ranges are calibrated here.
 * @param out receives the evaluator.
 * @param net a trained network.
 * @param ds the dataset (validation split used for accuracies).
 * @param seed seeds fine-tuning shuffles (each evaluation derives its stream from the seed and
 *        the policy hash, so results do not depend on evaluation order).
 */
MPQ_API mpq_status mpq_evaluator_create(mpq_evaluator **out, const mpq_net *net,
                                        const mpq_dataset *ds, uint64_t seed);

/** Destroys an evaluator. NULL is a no-op. @param ev the evaluator. */
MPQ_API void mpq_evaluator_destroy(mpq_evaluator *ev);

/**
 * Sets a parameter; changing one that affects results clears the cache.
 * @param ev the evaluator.
 * @param id which parameter.
 * @param value new value.
 */
MPQ_API mpq_status mpq_evaluator_set_param(mpq_evaluator *ev, mpq_eval_param id, double value);

/**
 * Reads a parameter.
 * @param ev the evaluator.
 * @param id which parameter.
 * @param value receives the value.
 */
MPQ_API mpq_status mpq_evaluator_get_param(const mpq_evaluator *ev, mpq_eval_param id,
                                           double *value);

/**
 * Describes an evaluator parameter.
 * @param id which parameter.
 * @param info receives the description (size set by the caller).
 */
MPQ_API mpq_status mpq_evaluator_param_info(mpq_eval_param id, mpq_param_info *info);

/**
 * Finds an evaluator parameter by name.
 * @param name parameter name ("finetune_batches").
 * @param id receives its id.
 */
MPQ_API mpq_status mpq_evaluator_param_find(const char *name, mpq_eval_param *id);

/**
 * The quantizable layers of the evaluator's network as a model (borrowed, valid while the
 * evaluator lives): build policies and hardware costs against it.
 * @param ev the evaluator.
 */
MPQ_API const mpq_model *mpq_evaluator_get_model(const mpq_evaluator *ev);

/**
 * Validation top-1 accuracy of @p policy (NULL: float), after the configured short fine-tune;
 * the trained weights are restored afterwards. Cached by mpq_policy_hash().
 * @param ev the evaluator.
 * @param policy the policy or NULL.
 * @param accuracy receives the accuracy in [0, 1].
 */
MPQ_API mpq_status mpq_evaluator_evaluate(mpq_evaluator *ev, const mpq_policy *policy,
                                          double *accuracy);

/**
 * ::mpq_evaluator_fn adapter: pass it with an ::mpq_evaluator as @p user to the search.
 * @param user an ::mpq_evaluator.
 * @param policy the policy.
 * @param accuracy receives the accuracy.
 */
MPQ_API mpq_status mpq_evaluator_callback(void *user, const mpq_policy *policy,
                                          double *accuracy);

/**
 * Final fine-tune of a chosen policy (AutoQ: SGD lr 1e-3, momentum 0.9 from the evaluator's
 * parameters) for @p epochs epochs on the training split, then top-1 on @p split. The evaluator's
 * network is restored afterwards; the fine-tuned network is returned if @p tuned is not NULL.
 * @param ev the evaluator.
 * @param policy the policy (NULL: float).
 * @param epochs fine-tune epochs (>= 0).
 * @param split split to report (::MPQ_SPLIT_TEST for final results).
 * @param accuracy receives the accuracy.
 * @param tuned receives the fine-tuned network with the policy installed (may be NULL).
 */
MPQ_API mpq_status mpq_evaluator_finetune(mpq_evaluator *ev, const mpq_policy *policy,
                                          int32_t epochs, mpq_split split, double *accuracy,
                                          mpq_net **tuned);

/**
 * Real int8 inference of @p policy on @p split (mpq_net_evaluate_int8()) after the configured
 * short fine-tune, from the trained weights like mpq_evaluator_evaluate() (not cached): its
 * fake-quant accuracy on the validation split equals mpq_evaluator_evaluate()'s with the same
 * limit.
 * @param ev the evaluator.
 * @param policy a policy whose bits are all <= 8.
 * @param split which split.
 * @param limit evaluate only the first @p limit images (0: all).
 * @param report receives the results (size set by the caller).
 */
MPQ_API mpq_status mpq_evaluator_evaluate_int8(mpq_evaluator *ev, const mpq_policy *policy,
                                               mpq_split split, int64_t limit,
                                               mpq_int8_report *report);

/**
 * Cache statistics.
 * @param ev the evaluator.
 * @param hits receives evaluations answered from the cache (may be NULL).
 * @param misses receives evaluations computed (may be NULL).
 */
MPQ_API mpq_status mpq_evaluator_get_cache_stats(const mpq_evaluator *ev, int64_t *hits,
                                             int64_t *misses);

/** @} */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_RUNTIME_H */
