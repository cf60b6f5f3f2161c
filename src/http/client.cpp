#include "dmscore/http/client.hpp"

#include "base/endpoint.hpp"

#include <fcntl.h>

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fstream>
#include <optional>

namespace dmscore::http {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

std::string_view ClientResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (beast::iequals(k, name)) return v;
  return {};
}

namespace {

struct Endpoint {
  std::string text;  // as given
  bool tls = true;
  std::string host;
  std::string port;
};

Result<Endpoint> parse_endpoint(const std::string& text) {
  auto n = dmscore::detail::parse_net_endpoint(text, "https", "endpoint");
  if (!n.ok()) return n.status();
  Endpoint e;
  e.text = text;
  e.tls = n->tls();
  e.host = n->host;
  e.port = std::to_string(n->port);
  return e;
}

bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

std::string describe(const beast::error_code& ec) {
  if (ec == beast::error::timeout || ec == net::error::timed_out) return "timed out";
  std::string m = ec.message();
  if (ec.category() == net::error::get_ssl_category()) {
    // OpenSSL's reason string, e.g. "certificate verify failed".
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    if (reason) m = reason;
  }
  return m;
}

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::vector<Endpoint> endpoints;
  std::size_t preferred = 0;
  net::io_context ioc;
  std::optional<ssl::context> tls;
  // The open connection, if any, and the endpoint it goes to.
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  std::size_t connected_to = 0;
  beast::flat_buffer buffer;
  // This request's bounds: the options', or a caller's shorter ones.
  std::chrono::milliseconds connect_timeout{0}, request_timeout{0};

  bool open() const { return plain.has_value() || secure.has_value(); }

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  void close() {
    beast::error_code ignored;
    if (secure) {
      beast::get_lowest_layer(*secure).socket().close(ignored);
      secure.reset();
    }
    if (plain) {
      plain->socket().close(ignored);
      plain.reset();
    }
    buffer.clear();
  }

  // Runs the io_context until the pending operation finishes.
  void run() {
    ioc.restart();
    ioc.run();
  }

  Status connect(std::size_t index) {
    close();
    const Endpoint& e = endpoints[index];
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    tcp::resolver::results_type results;
    // Resolution has no timeout of its own in Asio; bound the whole connect with the stream's.
    resolver.async_resolve(e.host, e.port, [&](beast::error_code err, auto r) {
      ec = err;
      results = std::move(r);
    });
    run();
    if (ec) return Status::Unavailable(e.text + ": cannot resolve host: " + describe(ec));

    beast::tcp_stream stream(ioc);
    stream.expires_after(connect_timeout);
    stream.async_connect(results, [&](beast::error_code err, const tcp::endpoint&) { ec = err; });
    run();
    if (ec) return Status::Unavailable(e.text + ": cannot connect: " + describe(ec));
    ::fcntl(stream.socket().native_handle(), F_SETFD, FD_CLOEXEC);  // Asio does not
    stream.socket().set_option(tcp::no_delay(true), ec);

    if (!e.tls) {
      plain.emplace(std::move(stream));
      connected_to = index;
      return Status::Ok();
    }
    secure.emplace(std::move(stream), *tls);
    if (!SSL_set_tlsext_host_name(secure->native_handle(), e.host.c_str())) {
      close();
      return Status::Unavailable(e.text + ": cannot set TLS server name");
    }
    if (!options.insecure) {
      secure->set_verify_mode(ssl::verify_peer);
      // Host name or IP address check, done by OpenSSL during the handshake.
      X509_VERIFY_PARAM* param = SSL_get0_param(secure->native_handle());
      beast::error_code addr_ec;
      net::ip::make_address(e.host, addr_ec);
      if (addr_ec) {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, e.host.c_str(), e.host.size());
      } else {
        X509_VERIFY_PARAM_set1_ip_asc(param, e.host.c_str());
      }
    } else {
      secure->set_verify_mode(ssl::verify_none);
    }
    beast::get_lowest_layer(*secure).expires_after(connect_timeout);
    secure->async_handshake(ssl::stream_base::client, [&](beast::error_code err) { ec = err; });
    run();
    if (ec) {
      std::string why = describe(ec);
      long verify = SSL_get_verify_result(secure->native_handle());
      if (verify != X509_V_OK)
        why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      close();
      return Status::Unavailable(e.text + ": TLS handshake failed: " + why);
    }
    connected_to = index;
    return Status::Ok();
  }

  // One exchange on the open connection. `sent_nothing_back` tells whether the failure came
  // before any byte of the answer, when a retry on a fresh connection is safe.
  Result<ClientResponse> exchange(const bhttp::request<bhttp::string_body>& req,
                                  bool& nothing_back) {
    nothing_back = true;
    beast::error_code ec;
    lowest().expires_after(request_timeout);
    auto on_write = [&](beast::error_code err, std::size_t) { ec = err; };
    if (secure)
      bhttp::async_write(*secure, req, on_write);
    else
      bhttp::async_write(*plain, req, on_write);
    run();
    const std::string& where = endpoints[connected_to].text;
    if (ec) {
      close();
      return Status::Unavailable(where + ": cannot send request: " + describe(ec));
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(options.max_response_bytes);
    auto on_read = [&](beast::error_code err, std::size_t) { ec = err; };
    if (secure)
      bhttp::async_read(*secure, buffer, parser, on_read);
    else
      bhttp::async_read(*plain, buffer, parser, on_read);
    run();
    nothing_back = !parser.got_some() && buffer.size() == 0;
    if (ec) {
      close();
      if (ec == bhttp::error::body_limit)
        return Status::ResourceExhausted(where + ": answer larger than " +
                                         std::to_string(options.max_response_bytes) + " bytes");
      if (ec == bhttp::error::header_limit)
        return Status::ResourceExhausted(where + ": answer headers larger than 64 KiB");
      if (ec == beast::error::timeout)
        return Status::Unavailable(where + ": no answer within " +
                                   std::to_string(request_timeout.count()) + " ms");
      if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
          ec == net::error::connection_reset || ec == ssl::error::stream_truncated || nothing_back)
        return Status::Unavailable(where + ": connection closed: " + describe(ec));
      return Status::Internal(where + ": malformed HTTP answer: " + describe(ec));
    }
    auto msg = parser.release();
    ClientResponse out;
    out.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg)
      out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    out.body = std::move(msg.body());
    out.endpoint = where;
    if (!msg.keep_alive()) close();
    return out;
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() {
  if (impl_) impl_->close();
}

const ClientOptions& Client::options() const { return impl_->options; }

void Client::set_header(std::string name, std::string value) {
  for (auto& [k, v] : impl_->options.headers) {
    if (beast::iequals(k, name)) {
      v = std::move(value);
      return;
    }
  }
  impl_->options.headers.emplace_back(std::move(name), std::move(value));
}

Result<std::unique_ptr<Client>> Client::create(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  if (options.endpoints.empty()) return Status::InvalidArgument("endpoint: none given");
  for (const auto& text : options.endpoints) {
    auto e = parse_endpoint(text);
    if (!e.ok()) return e.status();
    impl->endpoints.push_back(std::move(e).value());
  }
  if (options.connect_timeout.count() <= 0 || options.request_timeout.count() <= 0)
    return Status::InvalidArgument("timeout: must be positive");
  if (options.max_response_bytes == 0)
    return Status::InvalidArgument("max_response_bytes: must be positive");
  bool any_tls = std::any_of(impl->endpoints.begin(), impl->endpoints.end(),
                             [](const Endpoint& e) { return e.tls; });
  if (any_tls) {
    impl->tls.emplace(ssl::context::tls_client);
    auto& ctx = *impl->tls;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    beast::error_code ec;
    if (!options.ca_file.empty()) {
      std::ifstream probe(options.ca_file);
      if (!probe) return Status::InvalidArgument("ca_file: cannot read " + options.ca_file);
      ctx.load_verify_file(options.ca_file, ec);
      if (ec)
        return Status::InvalidArgument("ca_file: " + options.ca_file +
                                       " holds no usable PEM certificate: " + describe(ec));
    } else {
      ctx.set_default_verify_paths(ec);
    }
  }
  impl->options = std::move(options);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<ClientResponse> Client::request(std::string_view method, std::string_view target,
                                       std::string_view body, const Headers& headers,
                                       std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  d.connect_timeout = d.options.connect_timeout;
  d.request_timeout = d.options.request_timeout;
  if (timeout.count() > 0) {
    d.connect_timeout = std::min(d.connect_timeout, timeout);
    d.request_timeout = std::min(d.request_timeout, timeout);
  }
  if (target.empty() || target.front() != '/')
    return Status::InvalidArgument("target: must start with '/'");
  bhttp::verb verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown)
    return Status::InvalidArgument("method: unknown '" + std::string(method) + "'");

  Status last = Status::Unavailable("no endpoint tried");
  const std::size_t n = d.endpoints.size();
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t index = (d.preferred + k) % n;
    const Endpoint& e = d.endpoints[index];
    bhttp::request<bhttp::string_body> req(verb, std::string(target), 11);
    req.set(bhttp::field::host, e.host.find(':') != std::string::npos ? "[" + e.host + "]:" + e.port
                                                                      : e.host + ":" + e.port);
    req.set(bhttp::field::user_agent, d.options.user_agent);
    req.set(bhttp::field::accept, "application/json");
    for (const auto& [name, value] : d.options.headers) req.set(name, value);
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      if (req.find(bhttp::field::content_type) == req.end())
        req.set(bhttp::field::content_type, "application/json");
      req.body() = std::string(body);
    }
    req.keep_alive(true);
    req.prepare_payload();

    // A kept connection may have been closed by the peer meanwhile: then one more try on a
    // fresh one. A fresh connection that fails before any answer moves on to the next endpoint
    // when the request may be repeated; otherwise the peer may have acted on it, so stop.
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = d.open() && d.connected_to == index;
      if (!reused) {
        if (Status s = d.connect(index); !s.ok()) {
          last = s;
          break;
        }
      }
      bool nothing_back = true;
      auto r = d.exchange(req, nothing_back);
      if (r.ok()) {
        d.preferred = index;
        return r;
      }
      last = r.status();
      if (nothing_back && reused) continue;
      if (nothing_back && idempotent(method)) break;
      return last;
    }
  }
  return last;
}

}  // namespace dmscore::http
