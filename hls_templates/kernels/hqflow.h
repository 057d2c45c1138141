// hqflow kernel library: every op of a DeployGraph as a streaming layer (a function template on a
// config struct), and the streams between them.
#ifndef HQFLOW_H_
#define HQFLOW_H_

#include "hqflow_common.h"
#include "hqflow_head.h"
#include "hqflow_lif.h"
#include "hqflow_spike_ops.h"
#include "hqflow_ssa.h"
#include "hqflow_stream.h"
#include "hqflow_weights.h"
#include "hqflow_wlif.h"

#endif
