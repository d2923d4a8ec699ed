// One registry of knobs feeds the TOML loader, --set, --help and /admin/config.
#include "sim/config.hpp"

#include <charconv>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include <toml.hpp>

namespace payorch::sim {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return std::string(s.substr(b, e - b));
}

std::string LowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

[[noreturn]] void Bad(std::string_view name, std::string_view value, std::string_view want) {
  throw std::invalid_argument(std::string(name) + ": bad value '" + std::string(value) +
                              "' (expected " + std::string(want) + ")");
}

int64_t ParseInt(std::string_view name, std::string_view v) {
  std::string t = Trim(v);
  int64_t out = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  if (ec != std::errc() || p != t.data() + t.size()) Bad(name, v, "an integer");
  return out;
}

double ParseDouble(std::string_view name, std::string_view v) {
  std::string t = Trim(v);
  try {
    size_t used = 0;
    double d = std::stod(t, &used);
    if (used != t.size() || !std::isfinite(d)) Bad(name, v, "a number");
    return d;
  } catch (const std::invalid_argument&) {
    Bad(name, v, "a number");
  } catch (const std::out_of_range&) {
    Bad(name, v, "a number");
  }
}

double ParseRate(std::string_view name, std::string_view v) {
  double d = ParseDouble(name, v);
  if (d < 0 || d > 1) Bad(name, v, "a rate between 0 and 1");
  return d;
}

bool ParseBool(std::string_view name, std::string_view v) {
  std::string t = LowerCopy(Trim(v));
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  Bad(name, v, "true or false");
}

std::string FormatDouble(double d) {
  std::ostringstream o;
  o << d;
  return o.str();
}

std::string FormatMs(int64_t ms) {
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// Enum knobs: names in order of the enum values.
template <class E>
E ParseEnum(std::string_view name, std::string_view v, std::initializer_list<const char*> names) {
  std::string t = LowerCopy(Trim(v));
  int i = 0;
  for (const char* n : names) {
    if (t == LowerCopy(n)) return static_cast<E>(i);
    ++i;
  }
  std::string want;
  for (const char* n : names) want += (want.empty() ? "" : "|") + std::string(n);
  Bad(name, v, want);
}

template <class E>
std::string EnumName(E e, std::initializer_list<const char*> names) {
  int i = 0;
  for (const char* n : names)
    if (i++ == static_cast<int>(e)) return n;
  return "?";
}

#define KNOB_STR(NAME, FIELD, HELP)                                        \
  Knob {                                                                   \
    NAME, "string", HELP, [](const SimConfig& c) { return c.FIELD; },      \
        [](SimConfig& c, std::string_view v) { c.FIELD = std::string(v); } \
  }
#define KNOB_INT(NAME, FIELD, HELP)                                                    \
  Knob {                                                                               \
    NAME, "integer", HELP, [](const SimConfig& c) { return std::to_string(c.FIELD); }, \
        [](SimConfig& c, std::string_view v) {                                         \
          c.FIELD = static_cast<decltype(c.FIELD)>(ParseInt(NAME, v));                 \
        }                                                                              \
  }
#define KNOB_MS(NAME, FIELD, HELP)                                                \
  Knob {                                                                          \
    NAME, "duration", HELP, [](const SimConfig& c) { return FormatMs(c.FIELD); }, \
        [](SimConfig& c, std::string_view v) {                                    \
          try {                                                                   \
            c.FIELD = ParseDurationMs(v);                                         \
          } catch (const std::invalid_argument&) {                                \
            Bad(NAME, v, "a duration like 250ms, 2s, 10m");                       \
          }                                                                       \
        }                                                                         \
  }
#define KNOB_RATE(NAME, FIELD, HELP)                                                   \
  Knob {                                                                               \
    NAME, "rate 0..1", HELP, [](const SimConfig& c) { return FormatDouble(c.FIELD); }, \
        [](SimConfig& c, std::string_view v) { c.FIELD = ParseRate(NAME, v); }         \
  }
#define KNOB_BOOL(NAME, FIELD, HELP)                                                \
  Knob {                                                                            \
    NAME, "bool", HELP,                                                             \
        [](const SimConfig& c) { return std::string(c.FIELD ? "true" : "false"); }, \
        [](SimConfig& c, std::string_view v) { c.FIELD = ParseBool(NAME, v); }      \
  }
#define KNOB_ENUM(NAME, FIELD, TYPE, HELP, ...)                              \
  Knob {                                                                     \
    NAME, "one of " #__VA_ARGS__, HELP,                                      \
        [](const SimConfig& c) { return EnumName(c.FIELD, {__VA_ARGS__}); }, \
        [](SimConfig& c, std::string_view v) {                               \
          c.FIELD = ParseEnum<TYPE>(NAME, v, {__VA_ARGS__});                 \
        }                                                                    \
  }

std::vector<Knob> MakeKnobs() {
  std::vector<Knob> k = {
      // [server]
      KNOB_STR("server.listen", listen, "address to listen on (loopback by default)"),
      KNOB_INT("server.port", port, "TCP port; 0 picks a free one (printed at start)"),
      KNOB_STR("server.api_base", api_base,
               "base URL of operation hrefs; empty: http://<listen>:<port>"),
      KNOB_STR("server.ecom_base", ecom_base,
               "base URL of hosted-page hrefs (redirect/view); empty: <api_base>/ecom"),
      KNOB_INT("server.max_body_bytes", max_body_bytes,
               "largest request body; bigger ones get 413 with an inputerror problem"),
      KNOB_MS("server.read_timeout", read_timeout_ms,
              "real time a request may take to arrive; slower clients are disconnected"),
      KNOB_MS("server.idle_timeout", idle_timeout_ms,
              "real time an idle keep-alive connection is kept"),
      Knob{"server.time_scale", "number",
           "real seconds per simulated second: 0.001 runs payer delays and the callback "
           "schedule 1000x faster",
           [](const SimConfig& c) { return FormatDouble(c.time_scale); },
           [](SimConfig& c, std::string_view v) {
             double d = ParseDouble("server.time_scale", v);
             if (d <= 0) Bad("server.time_scale", v, "a positive number");
             c.time_scale = d;
           }},
      KNOB_INT("server.seed", seed, "seed of the fault and callback dice (runs repeat)"),
      KNOB_INT("server.log_level", log_level,
               "0 quiet, 1 payment events, 2 every request (tokens never, MSISDNs masked)"),
      KNOB_STR("server.port_file", port_file, "write the bound port to this file once listening"),
      // [merchant]
      KNOB_STR("merchant.token", token,
               "bearer token the simulator accepts (env PAYEX_SIM_TOKEN overrides)"),
      KNOB_STR("merchant.payee_id", payee_id, "payeeInfo.payeeId that belongs to the token"),
      // [payer]
      KNOB_MS("payer.approve_delay", approve_delay_ms,
              "simulated time until an ordinary number approves in the app"),
      KNOB_MS("payer.decline_delay", decline_delay_ms,
              "simulated time until +4799999989 declines (vipps_declined)"),
      KNOB_MS("payer.ignore_timeout", ignore_timeout_ms,
              "simulated time until +4799999990 times out (Failed, vipps_declined)"),
      KNOB_BOOL("payer.magic_numbers", magic_numbers,
                "honour the test numbers of api §5.5 (+479999999x) and the simulator's own"),
      KNOB_INT("payer.max_authorization_attempts", max_authorization_attempts,
               "failed authorizations before the payment becomes Failed"),
      // [callbacks]
      KNOB_BOOL("callbacks.enabled", callbacks, "POST callbacks to urls.callbackUrl"),
      Knob{"callbacks.schedule", "seconds,...",
           "retry offsets after the first attempt, in simulated seconds",
           [](const SimConfig& c) {
             std::string s;
             for (int64_t x : c.callback_schedule_s)
               s += (s.empty() ? "" : ",") + std::to_string(x);
             return s;
           },
           [](SimConfig& c, std::string_view v) {
             std::vector<int64_t> out;
             std::string t = Trim(v);
             if (!t.empty() && t.front() == '[') t = t.substr(1);
             if (!t.empty() && t.back() == ']') t.pop_back();
             size_t pos = 0;
             while (pos <= t.size() && !Trim(t).empty()) {
               size_t comma = t.find(',', pos);
               std::string part =
                   t.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
               int64_t x = ParseInt("callbacks.schedule", part);
               if (x < 0 || (!out.empty() && x < out.back()))
                 Bad("callbacks.schedule", v, "non-decreasing offsets >= 0");
               out.push_back(x);
               if (comma == std::string::npos) break;
               pos = comma + 1;
             }
             c.callback_schedule_s = out;
           }},
      KNOB_INT("callbacks.max_attempts", callback_max_attempts,
               "attempts per callback including the first (PayEx: 1 + 6; the 2026 text says 8)"),
      KNOB_MS("callbacks.timeout", callback_timeout_ms,
              "real time to wait for the merchant's answer to one attempt"),
      KNOB_BOOL("callbacks.on_abort", callback_on_abort,
                "send a callback when a payment is aborted"),
      KNOB_RATE("callbacks.lost_rate", callback_lost_rate, "share of callbacks never sent at all"),
      KNOB_RATE("callbacks.duplicate_rate", callback_duplicate_rate,
                "share of callbacks delivered twice"),
      KNOB_RATE("callbacks.delay_rate", callback_delay_rate,
                "share of callbacks held back by callbacks.delay"),
      KNOB_MS("callbacks.delay", callback_delay_ms, "simulated delay of a delayed callback"),
      KNOB_RATE("callbacks.reorder_rate", callback_reorder_rate,
                "share of callbacks held until the payment's next callback has gone out"),
      // [behaviour]
      KNOB_ENUM("behaviour.duplicate_payee_reference", duplicate_payee_reference, DuplicateMode,
                "a reused payeeReference: reject (400 inputerror), replay (answer the original) "
                "or allow (accept it again; the ledger check reports it)",
                "reject", "replay", "allow"),
      Knob{"behaviour.authorization_rel", "create-authorization|direct-authorization",
           "rel of the direct MSISDN authorization operation",
           [](const SimConfig& c) { return c.authorization_rel; },
           [](SimConfig& c, std::string_view v) {
             std::string t = Trim(v);
             if (t != "create-authorization" && t != "direct-authorization")
               Bad("behaviour.authorization_rel", v, "create-authorization|direct-authorization");
             c.authorization_rel = t;
           }},
      KNOB_BOOL("behaviour.direct_authorization", direct_authorization,
                "offer the direct MSISDN authorization at all (production may not)"),
      KNOB_ENUM("behaviour.msisdn_field", msisdn_field, MsisdnSpelling,
                "name of the number in authorization answers", "msisdn", "mobileNumber", "both"),
      KNOB_ENUM("behaviour.msisdn_request_field", msisdn_request_field, MsisdnSpelling,
                "name(s) of the number accepted in authorization requests", "msisdn",
                "mobileNumber", "both"),
      KNOB_ENUM("behaviour.list_items", list_items, ListShape,
                "authorization/capture/cancellation/reversal list items: {id, transaction} or flat",
                "wrapped", "flat"),
      KNOB_ENUM("behaviour.transaction_list_items", transaction_list_items, ListShape,
                "items of /transactions", "wrapped", "flat"),
      Knob{"behaviour.awaiting_payment_state", "Ready|Pending",
           "payment state while an authorization is AwaitingActivity",
           [](const SimConfig& c) {
             return std::string(c.awaiting_state_pending ? "Pending" : "Ready");
           },
           [](SimConfig& c, std::string_view v) {
             std::string t = LowerCopy(Trim(v));
             if (t != "ready" && t != "pending")
               Bad("behaviour.awaiting_payment_state", v, "Ready|Pending");
             c.awaiting_state_pending = t == "pending";
           }},
      KNOB_BOOL("behaviour.abort_during_awaiting", abort_during_awaiting,
                "allow abort while the payer decides (the authorization then fails)"),
      KNOB_ENUM("behaviour.remaining_before_authorization", remaining_before_authorization,
                RemainingBeforeAuth, "remaining*Amount fields before authorization", "omit", "zero",
                "full"),
      Knob{"behaviour.settlement", "A|B",
           "payeeReference format: A = [A-Za-z0-9]{1,30}, B = digits, at most 12",
           [](const SimConfig& c) { return std::string(1, c.settlement); },
           [](SimConfig& c, std::string_view v) {
             std::string t = Trim(v);
             if (t != "A" && t != "B" && t != "a" && t != "b")
               Bad("behaviour.settlement", v, "A|B");
             c.settlement = static_cast<char>(std::toupper(static_cast<unsigned char>(t[0])));
           }},
      KNOB_INT("behaviour.lock_after_failures", lock_after_failures,
               "consecutive failed reversals that lock the payment (0: never)"),
      KNOB_BOOL("behaviour.lock_captures", lock_captures,
                "apply the lock to consecutive failed captures too"),
  };
  return k;
}

}  // namespace

const std::vector<Knob>& Knobs() {
  static const std::vector<Knob> knobs = MakeKnobs();
  return knobs;
}

void SetKnob(SimConfig& config, std::string_view name, std::string_view value) {
  for (const Knob& k : Knobs())
    if (k.name == name) {
      k.set(config, value);
      return;
    }
  throw std::invalid_argument("unknown setting '" + std::string(name) + "' (see --help)");
}

std::string GetKnob(const SimConfig& config, std::string_view name) {
  for (const Knob& k : Knobs())
    if (k.name == name) return k.get(config);
  throw std::invalid_argument("unknown setting '" + std::string(name) + "'");
}

int64_t ParseDurationMs(std::string_view text) {
  std::string t = LowerCopy(Trim(text));
  size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  if (i == 0) throw std::invalid_argument("bad duration");
  double n;
  try {
    n = std::stod(t.substr(0, i));
  } catch (...) {
    throw std::invalid_argument("bad duration");
  }
  std::string unit = Trim(t.substr(i));
  double ms;
  if (unit.empty() || unit == "s") {
    ms = n * 1000;
  } else if (unit == "ms") {
    ms = n;
  } else if (unit == "m" || unit == "min") {
    ms = n * 60'000;
  } else if (unit == "h") {
    ms = n * 3'600'000;
  } else {
    throw std::invalid_argument("bad duration unit");
  }
  return static_cast<int64_t>(std::llround(ms));
}

namespace {
constexpr const char* kFaultKinds[] = {
    "latency",     "error",     "drop_before", "drop_after",         "error_after", "hang",
    "initialized", "tx_failed", "bad_json",    "wrong_content_type", "truncated"};
constexpr const char* kEndpoints[] = {"create", "get",     "authorize", "capture",
                                      "cancel", "reverse", "abort",     "any"};
}  // namespace

const char* FaultKindName(FaultKind kind) {
  return kFaultKinds[static_cast<int>(kind)];
}

FaultRule ParseFault(std::string_view spec) {
  std::string s = Trim(spec);
  size_t colon = s.find(':');
  if (colon == std::string::npos)
    throw std::invalid_argument("fault '" + s + "': expected endpoint:kind[,key=value...]");
  FaultRule r;
  r.endpoint = LowerCopy(Trim(s.substr(0, colon)));
  bool known = false;
  for (const char* e : kEndpoints) known |= r.endpoint == e;
  if (!known)
    throw std::invalid_argument("fault '" + s +
                                "': endpoint must be create|get|authorize|capture|cancel|"
                                "reverse|abort|any");
  std::string rest = s.substr(colon + 1);
  std::vector<std::string> parts;
  size_t pos = 0;
  for (;;) {
    size_t comma = rest.find(',', pos);
    parts.push_back(
        Trim(rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::string kind = LowerCopy(parts[0]);
  bool found = false;
  for (size_t i = 0; i < std::size(kFaultKinds); ++i)
    if (kind == kFaultKinds[i]) {
      r.kind = static_cast<FaultKind>(i);
      found = true;
    }
  if (!found) {
    std::string all;
    for (const char* k : kFaultKinds) all += (all.empty() ? "" : "|") + std::string(k);
    throw std::invalid_argument("fault '" + s + "': kind must be " + all);
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    size_t eq = parts[i].find('=');
    if (eq == std::string::npos)
      throw std::invalid_argument("fault '" + s + "': bad '" + parts[i] + "'");
    std::string key = LowerCopy(Trim(parts[i].substr(0, eq)));
    std::string val = Trim(parts[i].substr(eq + 1));
    if (key == "rate") {
      r.rate = ParseRate("fault rate", val);
    } else if (key == "count") {
      r.count = ParseInt("fault count", val);
    } else if (key == "latency") {
      r.latency_ms = ParseDurationMs(val);
    } else if (key == "status") {
      r.status = static_cast<int>(ParseInt("fault status", val));
      if (r.status < 100 || r.status > 599) Bad("fault status", val, "an HTTP status");
    } else if (key == "problem") {
      r.problem = val;
    } else {
      throw std::invalid_argument("fault '" + s + "': unknown key '" + key + "'");
    }
  }
  if ((r.kind == FaultKind::kLatency || r.kind == FaultKind::kHang) && r.latency_ms == 0)
    r.latency_ms = r.kind == FaultKind::kHang ? 60'000 : 100;
  return r;
}

std::string FormatFault(const FaultRule& r) {
  std::string s = r.endpoint + ":" + FaultKindName(r.kind) + ",rate=" + FormatDouble(r.rate);
  if (r.count >= 0) s += ",count=" + std::to_string(r.count);
  if (r.latency_ms) s += ",latency=" + FormatMs(r.latency_ms);
  if (r.kind == FaultKind::kError || r.kind == FaultKind::kErrorAfter)
    s += ",status=" + std::to_string(r.status);
  if (r.kind == FaultKind::kTxFailed) s += ",problem=" + r.problem;
  return s;
}

namespace {
std::string TomlToText(const toml::value& v) {
  if (v.is_string()) return v.as_string().str;
  if (v.is_boolean()) return v.as_boolean() ? "true" : "false";
  if (v.is_integer()) return std::to_string(v.as_integer());
  if (v.is_floating()) return FormatDouble(v.as_floating());
  if (v.is_array()) {
    std::string s;
    for (const auto& item : v.as_array()) s += (s.empty() ? "" : ",") + TomlToText(item);
    return s;
  }
  throw std::invalid_argument("unsupported TOML value");
}
}  // namespace

void LoadToml(SimConfig& config, const std::string& path) {
  toml::value data;
  try {
    data = toml::parse(path);
  } catch (const std::exception& e) {
    throw std::invalid_argument("config " + path + ": " + e.what());
  }
  for (const auto& [section, table] : data.as_table()) {
    if (section == "faults") {
      if (!table.is_array())
        throw std::invalid_argument(path + ": [[faults]] must be an array of tables");
      for (const auto& f : table.as_array()) {
        if (!f.is_table())
          throw std::invalid_argument(path + ": [[faults]] entries must be tables");
        std::string endpoint = "any", kind;
        std::string extra;
        for (const auto& [key, val] : f.as_table()) {
          std::string text = TomlToText(val);
          if (key == "endpoint") {
            endpoint = text;
          } else if (key == "kind") {
            kind = text;
          } else if (key == "rate" || key == "count" || key == "latency" || key == "status" ||
                     key == "problem") {
            extra += "," + key + "=" + text;
          } else {
            throw std::invalid_argument(path + ": [[faults]] unknown key '" + key + "'");
          }
        }
        config.faults.push_back(ParseFault(endpoint + ":" + kind + extra));
      }
      continue;
    }
    if (!table.is_table())
      throw std::invalid_argument(path + ": '" + section + "' must be a [section]");
    for (const auto& [key, val] : table.as_table()) {
      std::string name = section + "." + key;
      try {
        SetKnob(config, name, TomlToText(val));
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(path + ": " + e.what());
      }
    }
  }
}

std::string HelpText() {
  std::ostringstream o;
  o << "payex-sim: a PayEx Vipps (psp/vipps, payment instrument v1) simulator with a\n"
       "simulated payer, callbacks and fault injection, for tests, demos and benchmarks.\n\n"
       "usage: payex-sim [--config FILE] [options]\n\n"
       "options:\n"
       "  --config FILE        TOML file (config/payex-sim.toml shows every knob)\n"
       "  --listen ADDR        = --set server.listen=ADDR\n"
       "  --port N             = --set server.port=N (0: any free port)\n"
       "  --port-file FILE     = --set server.port_file=FILE\n"
       "  --time-scale X       = --set server.time_scale=X\n"
       "  --seed N             = --set server.seed=N\n"
       "  --set KEY=VALUE      set any knob below (applied after the file, in order)\n"
       "  --fault SPEC         add a fault rule (see FAULTS); repeatable\n"
       "  --quiet | --verbose  log level 0 | 2\n"
       "  --print-config       print the effective configuration and exit\n"
       "  --help               this text\n\n"
       "On start it prints 'payex-sim listening on http://ADDR:PORT' on stdout.\n"
       "Env PAYEX_SIM_TOKEN overrides merchant.token.\n\n"
       "KNOBS (section.key  type  [default]  meaning)\n";
  SimConfig defaults;
  std::string section;
  for (const Knob& k : Knobs()) {
    std::string sec = k.name.substr(0, k.name.find('.'));
    if (sec != section) {
      o << "\n  [" << sec << "]\n";
      section = sec;
    }
    std::string def = k.get(defaults);
    o << "  " << k.name << "  (" << k.kind << ")  [" << (def.empty() ? "\"\"" : def) << "]\n"
      << "      " << k.help << "\n";
  }
  o << "\nFAULTS  --fault ENDPOINT:KIND[,rate=R][,count=N][,latency=D][,status=S][,problem=P]\n"
       "  ENDPOINT  create get authorize capture cancel reverse abort any\n"
       "  rate      probability per matching request [1]; count: applications left [-1 = "
       "unlimited]\n"
       "  KIND\n"
       "    latency             wait D (real time, default 100ms) before handling\n"
       "    error               answer S (default 500; 429, 502, 503 ...) with a problem, no "
       "effect\n"
       "    drop_before         reset the connection, no effect\n"
       "    drop_after          apply the effect, then reset the connection (the in-doubt case)\n"
       "    error_after         apply the effect, then answer S (default 500)\n"
       "    hang                apply the effect, hold the connection D (default 60s), close\n"
       "    initialized         leave the new transaction Initialized (payment Pending)\n"
       "    tx_failed           create the transaction Failed with problem P [acquirer_error]\n"
       "    bad_json            apply the effect, answer 200 with broken JSON\n"
       "    wrong_content_type  apply the effect, answer 200 text/html\n"
       "    truncated           apply the effect, send half the body and close\n"
       "  In TOML: [[faults]] endpoint = \"capture\"  kind = \"drop_after\"  rate = 0.1 ...\n\n"
       "PAYER (by MSISDN, +47 and 8 digits; payer.magic_numbers)\n"
       "  +4799999991..98   403 vipps_error on the authorization POST, no transaction (api §5.5)\n"
       "  +4799999990       AwaitingActivity, then Failed vipps_declined after "
       "payer.ignore_timeout\n"
       "  +4799999989       Failed vipps_declined after payer.decline_delay\n"
       "  +4799999988       Initialized (outcome unknown; payment Pending) until forced\n"
       "  +4799999987       Failed acquirer_insufficient_funds after payer.approve_delay\n"
       "  +4799999986       Completed at once, in the POST answer\n"
       "  +4799999985       AwaitingActivity until forced (never decides)\n"
       "  any other         Completed after payer.approve_delay\n\n"
       "CALLBACKS  POST {payment:{id,number}, transaction:{id,number}} to urls.callbackUrl when\n"
       "  an authorization ends and when a capture, cancellation or reversal is created;\n"
       "  retried until a 2xx at callbacks.schedule offsets (scaled by server.time_scale).\n"
       "  Plain http callback URLs only (payorch's endpoint on loopback).\n\n"
       "RULES (api §13/§14; answers are application/problem+json with\n"
       "  https://api.payex.com/psp/errordetail/<type>)\n"
       "  401 unauthorized    missing or wrong bearer token\n"
       "  400 inputerror      a field is missing or invalid; amount above what remains;\n"
       "                      a reused payeeReference (behaviour.duplicate_payee_reference)\n"
       "  403 forbidden       the operation is not offered in the payment's state (capture\n"
       "                      before authorization, second authorization while one is\n"
       "                      pending or completed, abort after a completed transaction,\n"
       "                      anything while Pending, a locked payment)\n"
       "  404 notfound        unknown payment or transaction; 405 wrong method\n"
       "  413/431/400         body or header too large, malformed HTTP (then the\n"
       "                      connection closes)\n"
       "  Operations are offered only when their precondition holds; remaining amounts\n"
       "  are recomputed from the Completed transactions after every change.\n\n"
       "ADMIN API (same port, outside /psp; never faulted)\n"
       "  GET  /admin/payments                 payments with their transactions\n"
       "  GET  /admin/payments/{id}            one payment (id = guid or /psp/... id)\n"
       "  POST /admin/payments/{id}/force      {\"outcome\":\"Completed|Failed|Initialized|"
       "AwaitingActivity\",\n"
       "                                        \"transaction\":\"<guid>\"?, "
       "\"problem\":\"<type>\"?}\n"
       "  GET  /admin/ledger                   money-rule violations and payeeReferences that\n"
       "                                       took effect twice ({\"ok\":true} when clean)\n"
       "  GET  /admin/callbacks                every callback and its attempts\n"
       "  GET  /admin/requests                 the last 1000 requests (headers, no token)\n"
       "  GET  /admin/config                   every knob and the fault rules\n"
       "  POST /admin/config                   {\"section.key\":\"value\", ...}\n"
       "  GET  /admin/faults  POST /admin/faults {\"faults\":[\"capture:drop_after,count=1\"]}\n"
       "                                       (replaces; {\"add\":[...]} appends)\n"
       "  POST /admin/reset                    forget payments, callbacks and requests\n"
       "                                       ({\"config\":true} also restores the start "
       "config)\n";
  return o.str();
}

bool ParseArgs(SimConfig& config, int argc, char** argv, std::string& help_out) {
  bool print_config = false;
  // The file first, wherever it stands, so flags override it.
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--config") {
      if (i + 1 >= argc) throw std::invalid_argument("--config needs a file");
      LoadToml(config, argv[i + 1]);
    }
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      help_out = HelpText();
      return false;
    } else if (a == "--config") {
      ++i;
    } else if (a == "--listen") {
      SetKnob(config, "server.listen", next());
    } else if (a == "--port") {
      SetKnob(config, "server.port", next());
    } else if (a == "--port-file") {
      SetKnob(config, "server.port_file", next());
    } else if (a == "--time-scale") {
      SetKnob(config, "server.time_scale", next());
    } else if (a == "--seed") {
      SetKnob(config, "server.seed", next());
    } else if (a == "--set") {
      std::string kv = next();
      size_t eq = kv.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("--set needs KEY=VALUE");
      SetKnob(config, kv.substr(0, eq), kv.substr(eq + 1));
    } else if (a == "--fault") {
      config.faults.push_back(ParseFault(next()));
    } else if (a == "--quiet") {
      config.log_level = 0;
    } else if (a == "--verbose") {
      config.log_level = 2;
    } else if (a == "--print-config") {
      print_config = true;
    } else {
      throw std::invalid_argument("unknown argument '" + std::string(a) + "' (see --help)");
    }
  }
  if (const char* env = std::getenv("PAYEX_SIM_TOKEN"); env && *env) config.token = env;
  if (config.port < 0 || config.port > 65535)
    throw std::invalid_argument("server.port out of range");
  if (print_config) {
    std::ostringstream o;
    for (const Knob& k : Knobs())
      if (k.name != "merchant.token") o << k.name << " = " << k.get(config) << "\n";
    for (const FaultRule& f : config.faults) o << "fault = " << FormatFault(f) << "\n";
    help_out = o.str();
    return false;
  }
  return true;
}

}  // namespace payorch::sim
