#include "dmscore/version.hpp"

namespace dmscore {
const char* version() { return DMSCORE_VERSION_STRING; }
}  // namespace dmscore
