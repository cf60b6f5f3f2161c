// The HTTP ceiling of this machine for the load benchmark: a minimal Boost.Beast server that
// answers every request with one fixed JSON body, keep-alive, on N threads. No routing, no
// authentication, no storage: what dmsctl serve is compared with in docs/benchmarks.md.
//
//   beast_ceiling PORT [THREADS]      (prints "listening on PORT" when ready)
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

const std::string kBody =
    R"({"workflow":{"id":"5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e","type":"ATTACH_CLUSTER",)"
    R"("state":"COMPLETED","msg":"","createdAt":"2026-11-22T09:30:00.123Z",)"
    R"("progress":{"percent":100,"stage":"done","bytesDone":"0","bytesTotal":"0"}}})";

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : stream_(std::move(s)) {}
  void read() {
    req_ = {};
    http::async_read(stream_, buf_, req_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return;
                       self->write();
                     });
  }

 private:
  void write() {
    auto res =
        std::make_shared<http::response<http::string_body>>(http::status::ok, req_.version());
    res->set(http::field::content_type, "application/json");
    res->keep_alive(req_.keep_alive());
    res->body() = kBody;
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) return;
                        self->read();
                      });
  }
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
};

void accept(tcp::acceptor& a) {
  a.async_accept(net::make_strand(a.get_executor()), [&a](beast::error_code ec, tcp::socket s) {
    if (!ec) std::make_shared<Session>(std::move(s))->read();
    accept(a);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: beast_ceiling PORT [THREADS]\n");
    return 2;
  }
  int threads = argc > 2 ? std::stoi(argv[2]) : 2;
  net::io_context ioc(threads);
  tcp::acceptor acceptor(
      ioc, {net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::stoi(argv[1]))});
  accept(acceptor);
  std::printf("listening on %u\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
  ioc.run();
}
