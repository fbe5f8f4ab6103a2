/* Private to lib/model: the layout of an imported graph (mpq_graph). */
#ifndef MPQ_GRAPH_INTERNAL_H
#define MPQ_GRAPH_INTERNAL_H

#include <mpq/model.h>

#define MPQ_GRAPH_NAME_MAX 63
#define MPQ_GRAPH_TENSORS 6

typedef struct mpq_gnode {
    mpq_graph_node d; /* size = sizeof(mpq_graph_node) */
    char name[MPQ_GRAPH_NAME_MAX + 1];
    float *t[MPQ_GRAPH_TENSORS];
    int64_t nt[MPQ_GRAPH_TENSORS];
} mpq_gnode;

struct mpq_graph {
    char name[MPQ_GRAPH_NAME_MAX + 1];
    int32_t in_c, in_h, in_w;
    mpq_gnode *nodes;
    size_t count, cap;
};

/* An empty graph named @p name (truncated to MPQ_GRAPH_NAME_MAX bytes). */
mpq_status mpq_graph_alloc(mpq_graph **out, const char *name);
/* Appends a zeroed node (d.size, d.layer = -1, d.input2 = -1 set) and returns it. */
mpq_status mpq_graph_push(mpq_graph *g, mpq_gnode **node);

#endif
