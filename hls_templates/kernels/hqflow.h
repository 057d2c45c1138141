// hqflow kernel library: every op of a DeployGraph, as function templates on config structs.
#ifndef HQFLOW_H_
#define HQFLOW_H_

#include "hqflow_common.h"
#include "hqflow_conv.h"
#include "hqflow_head.h"
#include "hqflow_lif.h"
#include "hqflow_linear.h"
#include "hqflow_spike_ops.h"
#include "hqflow_ssa.h"
#include "hqflow_weights.h"

#endif
