#include <stdio.h>
#include <string.h>

#include "model_internal.h"

/* The zoo: the networks of the HAQ and AutoQ papers with ImageNet shapes (224x224, batch 1).
 * Layer names and order follow torchvision's module tree (named_modules()), so that a policy
 * written here can be applied to a torchvision model by name. MobileNet-V1 is not in torchvision;
 * it follows HAQ's models/mobilenet.py (mit-han-lab/haq), whose Sequential is called "model". */

typedef struct zoo_builder {
    mpq_model *m;
    mpq_status st;
} zoo_builder;

/* Adds a square conv on a square input of side @p hw; returns the output side (0 after an
 * error, which is sticky so builders can chain calls and check once). */
static int conv(zoo_builder *b, const char *name, int in, int out, int k, int s, int p, int g,
                int hw, int bias, int bn)
{
    if (b->st)
        return 0;
    mpq_layer_shape sh;
    mpq_layer_shape_conv(&sh, in, out, k, s, p, g, hw, hw);
    sh.has_bias = bias;
    sh.has_batchnorm = bn;
    b->st = mpq_model_add_layer(b->m, name, &sh);
    if (b->st)
        return 0;
    return b->m->layers[b->m->count - 1].shape.out_h;
}

static void fc(zoo_builder *b, const char *name, int in, int out)
{
    if (b->st)
        return;
    mpq_layer_shape sh;
    mpq_layer_shape_fc(&sh, in, out);
    b->st = mpq_model_add_layer(b->m, name, &sh);
}

/* torch.nn.MaxPool2d output side; ceil_mode as SqueezeNet uses it (no padding). */
static int pool_out(int hw, int k, int s, int p, int ceil_mode)
{
    int num = hw + 2 * p - k;
    int o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    /* PyTorch drops a last window that would start entirely in the padding. */
    if (ceil_mode && (o - 1) * s >= hw + p)
        o--;
    return o;
}

static void resnet(zoo_builder *b, int bottleneck, const int blocks[4])
{
    char name[64];
    int hw = conv(b, "conv1", 3, 64, 7, 2, 3, 1, 224, 0, 1); /* 112 */
    hw = pool_out(hw, 3, 2, 1, 0);                           /* 56 */
    int in = 64;
    int expansion = bottleneck ? 4 : 1;
    for (int stage = 0; stage < 4; stage++) {
        int width = 64 << stage;
        for (int blk = 0; blk < blocks[stage]; blk++) {
            int stride = (stage > 0 && blk == 0) ? 2 : 1;
            int out = width * expansion;
            int block_in = hw;
            /* torchvision ResNet v1.5: the stride sits on the 3x3 conv of a bottleneck. */
            if (bottleneck) {
                snprintf(name, sizeof name, "layer%d.%d.conv1", stage + 1, blk);
                conv(b, name, in, width, 1, 1, 0, 1, block_in, 0, 1);
                snprintf(name, sizeof name, "layer%d.%d.conv2", stage + 1, blk);
                hw = conv(b, name, width, width, 3, stride, 1, 1, block_in, 0, 1);
                snprintf(name, sizeof name, "layer%d.%d.conv3", stage + 1, blk);
                conv(b, name, width, out, 1, 1, 0, 1, hw, 0, 1);
            } else {
                snprintf(name, sizeof name, "layer%d.%d.conv1", stage + 1, blk);
                hw = conv(b, name, in, width, 3, stride, 1, 1, block_in, 0, 1);
                snprintf(name, sizeof name, "layer%d.%d.conv2", stage + 1, blk);
                conv(b, name, width, width, 3, 1, 1, 1, hw, 0, 1);
            }
            if (stride != 1 || in != out) {
                snprintf(name, sizeof name, "layer%d.%d.downsample.0", stage + 1, blk);
                conv(b, name, in, out, 1, stride, 0, 1, block_in, 0, 1);
            }
            in = out;
        }
    }
    fc(b, "fc", in, 1000);
}

static void build_resnet18(zoo_builder *b)
{
    static const int blocks[4] = {2, 2, 2, 2};
    resnet(b, 0, blocks);
}

static void build_resnet50(zoo_builder *b)
{
    static const int blocks[4] = {3, 4, 6, 3};
    resnet(b, 1, blocks);
}

static void build_mobilenetv1(zoo_builder *b)
{
    /* HAQ models/mobilenet.py cfg: (out, stride) of each depthwise-separable block. */
    static const int cfg[13][2] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},
                                   {512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1},
                                   {512, 1}, {1024, 2}, {1024, 1}};
    char name[64];
    int hw = conv(b, "model.0.0", 3, 32, 3, 2, 1, 1, 224, 0, 1);
    int in = 32;
    for (int i = 0; i < 13; i++) {
        snprintf(name, sizeof name, "model.%d.0", i + 1);
        hw = conv(b, name, in, in, 3, cfg[i][1], 1, in, hw, 0, 1);
        snprintf(name, sizeof name, "model.%d.3", i + 1);
        hw = conv(b, name, in, cfg[i][0], 1, 1, 0, 1, hw, 0, 1);
        in = cfg[i][0];
    }
    fc(b, "fc", 1024, 1000);
}

static void build_mobilenetv2(zoo_builder *b)
{
    /* torchvision mobilenet_v2 inverted_residual_setting: t, c, n, s. */
    static const int cfg[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
    char name[64];
    int hw = conv(b, "features.0.0", 3, 32, 3, 2, 1, 1, 224, 0, 1);
    int in = 32, feature = 1;
    for (int i = 0; i < 7; i++) {
        for (int r = 0; r < cfg[i][2]; r++, feature++) {
            int stride = r == 0 ? cfg[i][3] : 1;
            int hidden = in * cfg[i][0];
            int sub = 0;
            if (cfg[i][0] != 1) {
                snprintf(name, sizeof name, "features.%d.conv.%d.0", feature, sub++);
                conv(b, name, in, hidden, 1, 1, 0, 1, hw, 0, 1);
            }
            snprintf(name, sizeof name, "features.%d.conv.%d.0", feature, sub++);
            hw = conv(b, name, hidden, hidden, 3, stride, 1, hidden, hw, 0, 1);
            snprintf(name, sizeof name, "features.%d.conv.%d", feature, sub);
            conv(b, name, hidden, cfg[i][1], 1, 1, 0, 1, hw, 0, 1);
            in = cfg[i][1];
        }
    }
    conv(b, "features.18.0", 320, 1280, 1, 1, 0, 1, hw, 0, 1);
    fc(b, "classifier.1", 1280, 1000);
}

static void fire(zoo_builder *b, int index, int in, int squeeze, int e1, int e3, int hw)
{
    char name[64];
    snprintf(name, sizeof name, "features.%d.squeeze", index);
    conv(b, name, in, squeeze, 1, 1, 0, 1, hw, 1, 0);
    snprintf(name, sizeof name, "features.%d.expand1x1", index);
    conv(b, name, squeeze, e1, 1, 1, 0, 1, hw, 1, 0);
    snprintf(name, sizeof name, "features.%d.expand3x3", index);
    conv(b, name, squeeze, e3, 3, 1, 1, 1, hw, 1, 0);
}

static void build_squeezenet1_0(zoo_builder *b)
{
    int hw = conv(b, "features.0", 3, 96, 7, 2, 0, 1, 224, 1, 0); /* 109 */
    hw = pool_out(hw, 3, 2, 0, 1);                                 /* 54 */
    fire(b, 3, 96, 16, 64, 64, hw);
    fire(b, 4, 128, 16, 64, 64, hw);
    fire(b, 5, 128, 32, 128, 128, hw);
    hw = pool_out(hw, 3, 2, 0, 1); /* 27 */
    fire(b, 7, 256, 32, 128, 128, hw);
    fire(b, 8, 256, 48, 192, 192, hw);
    fire(b, 9, 384, 48, 192, 192, hw);
    fire(b, 10, 384, 64, 256, 256, hw);
    hw = pool_out(hw, 3, 2, 0, 1); /* 13 */
    fire(b, 12, 512, 64, 256, 256, hw);
    conv(b, "classifier.1", 512, 1000, 1, 1, 0, 1, hw, 1, 0);
}

static void build_squeezenet1_1(zoo_builder *b)
{
    int hw = conv(b, "features.0", 3, 64, 3, 2, 0, 1, 224, 1, 0); /* 111 */
    hw = pool_out(hw, 3, 2, 0, 1);                                 /* 55 */
    fire(b, 3, 64, 16, 64, 64, hw);
    fire(b, 4, 128, 16, 64, 64, hw);
    hw = pool_out(hw, 3, 2, 0, 1); /* 27 */
    fire(b, 6, 128, 32, 128, 128, hw);
    fire(b, 7, 256, 32, 128, 128, hw);
    hw = pool_out(hw, 3, 2, 0, 1); /* 13 */
    fire(b, 9, 256, 48, 192, 192, hw);
    fire(b, 10, 384, 48, 192, 192, hw);
    fire(b, 11, 384, 64, 256, 256, hw);
    fire(b, 12, 512, 64, 256, 256, hw);
    conv(b, "classifier.1", 512, 1000, 1, 1, 0, 1, hw, 1, 0);
}

typedef struct zoo_entry {
    const char *name;
    void (*build)(zoo_builder *b);
} zoo_entry;

static const zoo_entry zoo[] = {
    {"resnet18", build_resnet18},           {"resnet50", build_resnet50},
    {"mobilenetv1", build_mobilenetv1},     {"mobilenetv2", build_mobilenetv2},
    {"squeezenet1_0", build_squeezenet1_0}, {"squeezenet1_1", build_squeezenet1_1},
};

#define ZOO_COUNT (sizeof zoo / sizeof zoo[0])

size_t mpq_model_zoo_count(void) { return ZOO_COUNT; }

const char *mpq_model_zoo_name(size_t index)
{
    return index < ZOO_COUNT ? zoo[index].name : NULL;
}

mpq_status mpq_model_zoo(mpq_model **out, const char *name)
{
    if (!out || !name)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_zoo: %s is NULL",
                             out ? "name" : "out");
    for (size_t i = 0; i < ZOO_COUNT; i++) {
        if (strcmp(zoo[i].name, name) != 0)
            continue;
        zoo_builder b = {NULL, MPQ_OK};
        mpq_status st = mpq_model_create(&b.m, name);
        if (st)
            return st;
        zoo[i].build(&b);
        if (b.st) {
            mpq_model_destroy(b.m);
            return b.st;
        }
        *out = b.m;
        return MPQ_OK;
    }
    return mpq_set_error(MPQ_ERR_NOT_FOUND,
                         "mpq_model_zoo: no network '%s' (valid: resnet18, resnet50, "
                         "mobilenetv1, mobilenetv2, squeezenet1_0, squeezenet1_1)",
                         name);
}
