#pragma once
// Convenience header: the whole public surface of libdmscore.

#include "dmscore/copy.hpp"
#include "dmscore/env.hpp"
#include "dmscore/options.hpp"
#include "dmscore/result.hpp"
#include "dmscore/status.hpp"
#include "dmscore/store.hpp"
#include "dmscore/version.hpp"
#include "dmscore/workflow.hpp"
