// hqflow kernel library: what every streaming layer shares (the types, the streams and forks, the weight
// ROMs, the LIF). Each op's kernel (a function template on a config struct) is in its own header, which a
// project's parameters.h includes for the ops of its model.
#ifndef HQFLOW_H_
#define HQFLOW_H_

#include "hqflow_common.h"
#include "hqflow_lif.h"
#include "hqflow_stream.h"
#include "hqflow_weights.h"

#endif
