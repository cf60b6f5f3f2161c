#pragma once
// Convenience header: the whole public surface of libdmscore.

#include "dmscore/backend.hpp"
#include "dmscore/clone.hpp"
#include "dmscore/cluster.hpp"
#include "dmscore/copy.hpp"
#include "dmscore/env.hpp"
#include "dmscore/local_backend.hpp"
#include "dmscore/options.hpp"
#include "dmscore/result.hpp"
#include "dmscore/service.hpp"
#include "dmscore/status.hpp"
#include "dmscore/store.hpp"
#include "dmscore/version.hpp"
#include "dmscore/workflow.hpp"
