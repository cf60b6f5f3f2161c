#pragma once
// The base of the interfaces a Service hands out (clusters.hpp, volumes.hpp, ...): each is a
// view of the service's state, which stays opaque outside the library. Only a Service makes
// them (detail::ServiceImpl cannot be named outside it).

namespace dmscore::detail {

struct ServiceImpl;

class ServicePart {
 public:
  explicit ServicePart(ServiceImpl& impl) : impl_(&impl) {}

 protected:
  ServiceImpl* impl_;
};

}  // namespace dmscore::detail
