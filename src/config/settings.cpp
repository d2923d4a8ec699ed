// The settings table: every key of payorchd's configuration, its section, its
// field, its rule and its default (config/payorch.toml lists them in this order).
#include "config/setting.hpp"

#include <algorithm>
#include <charconv>

#include "domain/partition.hpp"

namespace payorch::config::detail {

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> settings = [] {
    using SR = StrRule;
    std::vector<Setting> s;
    const std::string p = "payments";
    s.push_back(Dur(p, "confirmation_timeout", FIELD(payments.confirmation_timeout)));
    s.push_back(Dur(p, "msisdn_timeout", FIELD(payments.msisdn_timeout)));
    s.push_back(Dur(p, "first_poll", FIELD(payments.first_poll)));
    s.push_back(Dur(p, "poll_max", FIELD(payments.poll_max)));
    s.push_back(Dur(p, "slow_poll", FIELD(payments.slow_poll)));
    s.push_back(Dur(p, "backoff_base", FIELD(payments.backoff_base)));
    s.push_back(Dur(p, "backoff_cap", FIELD(payments.backoff_cap)));
    s.push_back(Dur(p, "call_watchdog", FIELD(payments.call_watchdog)));
    s.push_back(Dur(p, "transit_horizon", FIELD(payments.transit_horizon)));

    const std::string st = "store";
    s.push_back(Str(st, "path", FIELD(store.path), SR::kNonEmpty));
    s.push_back(Bool(st, "create_if_missing", FIELD(store.options.create_if_missing)));
    s.push_back(Dur(st, "busy_timeout", FIELD(store.options.busy_timeout)));
    s.push_back(Bool(st, "quick_check", FIELD(store.options.quick_check)));
    s.push_back(Int(st, "quick_check_first_mib", FIELD(store.quick_check_first_mib), 0,
                    1'000'000'000));
    s.push_back(
        Int(st, "cache_kib", FIELD(store.options.cache_kib), 0, std::numeric_limits<int>::max()));
    s.push_back(Int(st, "wal_autocheckpoint_pages", FIELD(store.options.wal_autocheckpoint_pages),
                    0, std::numeric_limits<int>::max()));

    const std::string b = "bus";
    s.push_back(Str(b, "url", FIELD(bus.url), SR::kAmqpUrl));
    s.push_back(Int(b, "prefetch", FIELD(bus.prefetch), 1, 65535));
    s.push_back(Str(b, "consumer_tag", FIELD(bus.consumer_tag), SR::kName));
    s.push_back(Int(b, "max_in_flight", FIELD(bus.max_in_flight), 1));
    s.push_back(Int(b, "max_message_bytes", FIELD(bus.max_message_bytes), 1, 128ll << 20));
    s.push_back(Dur(b, "confirm_timeout", FIELD(bus.confirm_timeout)));
    s.push_back(Int(b, "heartbeat_seconds", FIELD(bus.heartbeat_seconds), 0, 65535));
    s.push_back(Dur(b, "connect_timeout", FIELD(bus.connect_timeout)));
    s.push_back(Dur(b, "reconnect_min", FIELD(bus.reconnect_min)));
    s.push_back(Dur(b, "reconnect_max", FIELD(bus.reconnect_max)));
    s.push_back(Bool(b, "declare_topology", FIELD(bus.declare_topology)));
    s.push_back(Str(b, "tls_ca_file", FIELD(bus.tls_ca_file), SR::kReadableFileOrEmpty));
    s.push_back(Str(b, "tls_cert_file", FIELD(bus.tls_cert_file), SR::kReadableFileOrEmpty));
    s.push_back(Str(b, "tls_key_file", FIELD(bus.tls_key_file), SR::kReadableFileOrEmpty));

    const std::string t = "bus.topology";
    s.push_back(Str(t, "orders_exchange", FIELD(bus.topology.orders_exchange), SR::kName));
    s.push_back(Str(t, "orders_queue", FIELD(bus.topology.orders_queue), SR::kName));
    s.push_back(Str(t, "orders_binding", FIELD(bus.topology.orders_binding), SR::kName));
    s.push_back(
        Str(t, "dead_letter_exchange", FIELD(bus.topology.dead_letter_exchange), SR::kName));
    s.push_back(Str(t, "dead_letter_queue", FIELD(bus.topology.dead_letter_queue), SR::kName));
    s.push_back(Str(t, "payments_exchange", FIELD(bus.topology.payments_exchange), SR::kName));
    s.push_back(Int(t, "delivery_limit", FIELD(bus.topology.delivery_limit), 1));
    s.push_back(
        Bool(t, "at_least_once_dead_lettering", FIELD(bus.topology.at_least_once_dead_lettering)));
    s.push_back(Int(t, "partitions", FIELD(bus.topology.partitions), 1, domain::kMaxPartitions));
    s.push_back(
        Str(t, "partitions_exchange", FIELD(bus.topology.partitions_exchange), SR::kName));

    const std::string x = "payex";
    s.push_back(Str(x, "base_url", FIELD(payex.base_url), SR::kHttpUrl));
    s.push_back(Bool(x, "allow_plain_http", FIELD(payex.allow_plain_http)));
    s.push_back(Str(x, "user_agent", FIELD(payex.user_agent), SR::kNonEmpty));
    s.push_back(Str(x, "ca_file", FIELD(payex.ca_file), SR::kAny));
    s.push_back(Str(x, "payee_id", FIELD(payex.payee_id), SR::kAny));
    s.push_back(Str(x, "payee_name", FIELD(payex.payee_name), SR::kAny));
    s.push_back(Str(x, "product_category", FIELD(payex.product_category), SR::kAny));
    s.push_back(Str(x, "subsite", FIELD(payex.subsite), SR::kAny));
    s.push_back(Setting{x, "host_urls",
                        [](Config& c, const Input& in) {
                          auto urls = GetStrings(in);
                          for (const auto& u : urls) CheckHttpUrl(u);
                          c.payex.host_urls = std::move(urls);
                        },
                        [](const Config& c) {
                          std::string v;
                          for (const auto& u : c.payex.host_urls) v += (v.empty() ? "" : ",") + u;
                          return ShowString(v);
                        }});
    s.push_back(Str(x, "complete_url", FIELD(payex.complete_url), SR::kHttpUrl));
    s.push_back(Str(x, "cancel_url", FIELD(payex.cancel_url), SR::kHttpUrlOrEmpty));
    s.push_back(
        Str(x, "default_payer_user_agent", FIELD(payex.default_payer_user_agent), SR::kNonEmpty));
    s.push_back(Str(x, "default_language", FIELD(payex.default_language), SR::kNonEmpty));
    s.push_back(Bool(x, "payer_reference_in_payer", FIELD(payex.payer_reference_in_payer)));
    s.push_back(Enum(x, "msisdn_field", FIELD(payex.msisdn_field),
                     std::vector<std::pair<std::string, payex::MsisdnField>>{
                         {"msisdn", payex::MsisdnField::kMsisdn},
                         {"mobileNumber", payex::MsisdnField::kMobileNumber},
                         {"both", payex::MsisdnField::kBoth}}));
    s.push_back(Str(x, "default_expand", FIELD(payex.default_expand), SR::kAny));
    s.push_back(Int(x, "max_connections", FIELD(payex.max_connections), 1));
    s.push_back(Dur(x, "request_timeout", FIELD(payex.request_timeout)));
    s.push_back(Dur(x, "connect_timeout", FIELD(payex.connect_timeout)));
    s.push_back(Dur(x, "idle_timeout", FIELD(payex.idle_timeout)));
    s.push_back(Int(x, "max_response_bytes", FIELD(payex.max_response_bytes), 1));
    s.push_back(Dur(x, "operations_cache_ttl", FIELD(payex.operations_cache_ttl), true));
    s.push_back(Int(x, "operations_cache_size", FIELD(payex.operations_cache_size), 0));

    const std::string h = "http";
    s.push_back(Str(h, "listen_address", FIELD(http.listen_address), SR::kNonEmpty));
    s.push_back(Int(h, "port", FIELD(http.port), 0, 65535));
    s.push_back(Str(h, "callback_base_url", FIELD(http.callback_base_url), SR::kCallbackUrl));
    s.push_back(Int(h, "max_body_bytes", FIELD(http.max_body_bytes), 1));
    s.push_back(Dur(h, "read_timeout", FIELD(http.read_timeout)));
    s.push_back(Dur(h, "idle_timeout", FIELD(http.idle_timeout)));
    s.push_back(Int(h, "max_connections", FIELD(http.max_connections), 1, 65'536));

    const std::string a = "admin";
    s.push_back(Str(a, "listen_address", FIELD(admin.listen_address), SR::kNonEmpty));
    s.push_back(Int(a, "port", FIELD(admin.port), 0, 65535));

    const std::string e = "engine";
    s.push_back(Int(e, "max_batch", FIELD(engine.max_batch), 1));
    s.push_back(Int(e, "max_concurrent_calls", FIELD(engine.max_concurrent_calls), 1));
    s.push_back(Dur(e, "commit_delay", FIELD(engine.commit_delay), true));
    s.push_back(Int(e, "cache_payments", FIELD(engine.cache_payments), 100, 100'000'000));
    s.push_back(Setting{e, "payex_rate_limit",
                        [](Config& c, const Input& in) {
                          double v = GetDouble(in);
                          if (!(v >= 0) || v > 1e9)
                            throw Bad{"must be a number of requests per second >= 0 (0: no limit)"};
                          c.engine.payex_rate_limit = v;
                        },
                        [](const Config& c) {
                          char buf[64];
                          auto [end, ec] =
                              std::to_chars(buf, buf + sizeof buf, c.engine.payex_rate_limit);
                          return std::string(buf, end);
                        }});

    const std::string i = "instance";
    s.push_back(Str(i, "partitions", FIELD(instance.partitions), SR::kNonEmpty));
    s.push_back(Str(i, "prefer", FIELD(instance.prefer), SR::kNonEmpty));
    s.push_back(Dur(i, "poll_interval", FIELD(instance.poll_interval)));
    s.push_back(Dur(i, "standby_delay", FIELD(instance.standby_delay), true));

    const std::string l = "log";
    s.push_back(Enum(l, "level", FIELD(log.level),
                     std::vector<std::pair<std::string, LogLevel>>{{"debug", LogLevel::kDebug},
                                                                   {"info", LogLevel::kInfo},
                                                                   {"warn", LogLevel::kWarn},
                                                                   {"error", LogLevel::kError}}));
    s.push_back(Enum(l, "format", FIELD(log.format),
                     std::vector<std::pair<std::string, LogFormat>>{{"text", LogFormat::kText},
                                                                    {"json", LogFormat::kJson}}));
    return s;
  }();
  return settings;
}
#undef FIELD

const std::vector<std::string>& SectionNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& s : Settings())
      if (std::find(n.begin(), n.end(), s.section) == n.end()) n.push_back(s.section);
    return n;
  }();
  return names;
}

bool IsSection(const std::string& name) {
  const auto& n = SectionNames();
  return std::find(n.begin(), n.end(), name) != n.end();
}

const Setting* FindSetting(const std::string& section, const std::string& key) {
  for (const auto& s : Settings())
    if (s.section == section && s.key == key) return &s;
  return nullptr;
}

}  // namespace payorch::config::detail
