#include "dmscore/clone.hpp"

#include <catch2/catch.hpp>

#include "base/codec.hpp"

using namespace dmscore;

namespace {

ThickCloneRequest good() {
  ThickCloneRequest r;
  r.src = {"3f1c2a9e-0000-4000-8000-000000000001", "p1", "3f1c2a9e-0000-4000-8000-0000000000aa"};
  r.dst.name = "copy-1";
  r.dst.cluster_id = "3f1c2a9e-0000-4000-8000-0000000000bb";
  return r;
}

}  // namespace

TEST_CASE("ThickCloneRequest: a minimal request is valid") {
  CHECK(validate(good(), false).ok());
  CHECK(validate(good(), true).ok());
}

TEST_CASE("ThickCloneRequest: each bad field is named") {
  auto expect = [](ThickCloneRequest r, const std::string& field, bool snapshot = false) {
    Status s = validate(r, snapshot);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message().rfind(field + ":", 0) == 0);
  };
  auto r = good();
  r.src.snap_id = "x";
  expect(r, "src.snapId");
  r = good();
  r.src.cluster_id = "";
  expect(r, "src.clusterId");
  r = good();
  r.src.project_name = "p/1";
  expect(r, "src.projectName");
  r = good();
  r.dst.name = "";
  expect(r, "dst.name");
  r = good();
  r.dst.project_name = "bad project";
  expect(r, "dst.projectName");
  r = good();
  r.dst.cluster_id = "3f1c2a9e";
  expect(r, "dst.clusterId");
  r = good();
  r.dst.size = 0;
  expect(r, "dst.size");
  r = good();
  r.dst.size = 4097;
  expect(r, "dst.size");
  r = good();
  r.dst.replica = 0;
  expect(r, "dst.replica");
  r = good();
  r.dst.sector_size = 2048;
  expect(r, "dst.sectorSize");
  r = good();
  r.dst.description = std::string(257, 'd');
  expect(r, "dst.description", true);
  r = good();
  r.dst.description = "only for snapshots";
  expect(r, "dst.description", false);
  r = good();
  r.dst.qos_policy_name = std::string(300, 'q');
  expect(r, "dst.qosPolicyName");
}

TEST_CASE("ThickCloneRequest: the JSON form round-trips with sizes as decimal strings") {
  auto r = good();
  r.dst.size = 10737418240ull;
  r.dst.replica = 2;
  r.dst.sector_size = 4096;
  r.dst.compression = false;
  r.verify_clone = true;
  auto text = boost::json::serialize(detail::to_json(r));
  CHECK(text.find(R"("size":"10737418240")") != std::string::npos);
  auto back = detail::thick_clone_request_from_json(boost::json::parse(text));
  REQUIRE(back.ok());
  CHECK(back->dst.size == r.dst.size);
  CHECK(back->dst.replica == 2);
  CHECK(back->verify_clone);
  CHECK(back->src.snap_id == r.src.snap_id);
}

TEST_CASE("ThickCloneRequest: strict decoding names unknown fields, wrong types and missing ones") {
  auto decode = [](const std::string& text) {
    auto v = detail::parse_json(text);
    if (!v.ok()) return v.status();
    return detail::thick_clone_request_from_json(*v).status();
  };
  const std::string src = R"("src":{"snapId":"a","projectName":"p","clusterId":"c"})";
  CHECK(decode("{" + src + R"(,"dst":{"name":"n","clusterId":"c"}})").ok());
  CHECK(decode("{" + src + R"(,"dst":{"name":"n","clusterId":"c","sise":"1"}})").message() ==
        "dst.sise: unknown field");
  CHECK(decode("{" + src + R"(,"dst":{"name":"n","clusterId":"c"},"verify":true})").message() ==
        "verify: unknown field");
  CHECK(decode("{" + src + R"(,"dst":{"name":7,"clusterId":"c"}})").message() ==
        "dst.name: must be a string");
  CHECK(decode("{" + src + R"(,"dst":{"name":"n","clusterId":"c","size":"12x"}})").message() ==
        "dst.size: must be a byte count as a decimal string");
  CHECK(decode("{" + src + R"(,"dst":{"name":"n","clusterId":"c","size":"-1"}})").code() ==
        Code::kInvalidArgument);
  CHECK(decode("{" + src + R"(,"dst":{"name":"n","clusterId":"c","replica":1e99}})").message() ==
        "dst.replica: must be an integer");
  CHECK(decode("{" + src + R"(,"dst":{"clusterId":"c"}})").message() == "dst.name: is required");
  CHECK(decode("{" + src + "}").message() == "dst: is required");
  CHECK(decode(R"({"src":[],"dst":{}})").message() == "src: must be an object");
  CHECK(decode("[1,2]").message() == "body: must be an object");
  CHECK(decode("{").message().rfind("body: malformed JSON", 0) == 0);
  std::string deep(100, '[');
  CHECK(decode(deep).code() == Code::kInvalidArgument);
  CHECK(decode("{" + src + R"(,"dst":{"name":"n","clusterId":"c"},"\u0001evil":1})").message() ==
        "?evil: unknown field");
}
