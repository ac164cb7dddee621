#include "immunizer/integrations/grpc_interceptor.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>

#include <optional>

namespace immunizer::integrations::grpc {

namespace pb = google::protobuf;
using ::grpc::experimental::InterceptionHookPoints;

namespace {

constexpr const char* kDeniedKey = "immunizer-denied";

// How much of a message may still be written into one record.
struct Budget {
  int max_depth;
  size_t left;
  bool truncated = false;
  bool take() {
    if (left == 0) {
      truncated = true;
      return false;
    }
    --left;
    return true;
  }
};

struct PbMessage {
  const pb::Message* m;
  int depth;
  Budget* b;
};
// One field of a message: the whole field (index < 0) or one element of a repeated field.
struct PbField {
  const pb::Message* m;
  const pb::FieldDescriptor* f;
  int index;
  int depth;
  Budget* b;
};

}  // namespace

namespace {

void immunizer_sensor_value(sensor::ValueWriter& w, const PbMessage& v);

// Writes a scalar field (or its element v.index) read with Reflection's getter of its type.
template <auto Get, auto GetRepeated, auto Put>
void put_scalar(sensor::ValueWriter& w, const PbField& v) {
  const pb::Reflection* r = v.m->GetReflection();
  (w.*Put)(v.index >= 0 ? (r->*GetRepeated)(*v.m, v.f, v.index) : (r->*Get)(*v.m, v.f));
}
using R = pb::Reflection;
using W = sensor::ValueWriter;
struct ScalarWriter {
  pb::FieldDescriptor::CppType type;
  void (*put)(W& w, const PbField& v);
};
// The numbers and bools: each type's getters and the ValueWriter kind it becomes.
constexpr ScalarWriter kScalarWriters[] = {
    {pb::FieldDescriptor::CPPTYPE_INT32,
     put_scalar<&R::GetInt32, &R::GetRepeatedInt32, &W::integer>},
    {pb::FieldDescriptor::CPPTYPE_INT64,
     put_scalar<&R::GetInt64, &R::GetRepeatedInt64, &W::integer>},
    {pb::FieldDescriptor::CPPTYPE_UINT32,
     put_scalar<&R::GetUInt32, &R::GetRepeatedUInt32, &W::integer>},
    {pb::FieldDescriptor::CPPTYPE_UINT64,
     put_scalar<&R::GetUInt64, &R::GetRepeatedUInt64, &W::unsigned_integer>},
    {pb::FieldDescriptor::CPPTYPE_DOUBLE,
     put_scalar<&R::GetDouble, &R::GetRepeatedDouble, &W::real>},
    {pb::FieldDescriptor::CPPTYPE_FLOAT, put_scalar<&R::GetFloat, &R::GetRepeatedFloat, &W::real>},
    {pb::FieldDescriptor::CPPTYPE_BOOL, put_scalar<&R::GetBool, &R::GetRepeatedBool, &W::boolean>},
};

void write_scalar(sensor::ValueWriter& w, const PbField& v) {
  for (const ScalarWriter& s : kScalarWriters)
    if (s.type == v.f->cpp_type()) return s.put(w, v);
  const pb::Reflection* r = v.m->GetReflection();
  const pb::FieldDescriptor* f = v.f;
  const bool rep = v.index >= 0;
  const int i = v.index;
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const int n = rep ? r->GetRepeatedEnumValue(*v.m, f, i) : r->GetEnumValue(*v.m, f);
      const pb::EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(n);
      if (e)
        w.string(e->name());
      else
        w.integer(n);  // an open enum's unknown value
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(*v.m, f, i, &scratch)
                                 : r->GetStringReference(*v.m, f, &scratch);
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES)
        w.bytes(s.data(), s.size());
      else
        w.string(s);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
      const pb::Message& sub = rep ? r->GetRepeatedMessage(*v.m, f, i) : r->GetMessage(*v.m, f);
      if (v.depth >= v.b->max_depth) {
        v.b->truncated = true;
        w.null();
      } else {
        immunizer_sensor_value(w, PbMessage{&sub, v.depth + 1, v.b});
      }
      break;
    }
    default:  // the scalars of kScalarWriters
      break;
  }
}

// Map keys as text (bool, integers and strings are the only key types protobuf allows).
std::string map_key(const pb::Message& entry) {
  const pb::FieldDescriptor* k = entry.GetDescriptor()->map_key();
  const pb::Reflection* r = entry.GetReflection();
  switch (k->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(r->GetInt32(entry, k));
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(r->GetInt64(entry, k));
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(r->GetUInt32(entry, k));
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(r->GetUInt64(entry, k));
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(entry, k) ? "true" : "false";
    default:
      return r->GetString(entry, k);
  }
}

void immunizer_sensor_value(sensor::ValueWriter& w, const PbField& v) {
  if (v.index >= 0 || !v.f->is_repeated()) return write_scalar(w, v);
  const pb::Reflection* r = v.m->GetReflection();
  const int n = r->FieldSize(*v.m, v.f);
  if (v.f->is_map()) {
    auto m = w.map();
    const pb::FieldDescriptor* value_field = v.f->message_type()->map_value();
    for (int i = 0; i < n && v.b->take(); ++i) {
      const pb::Message& entry = r->GetRepeatedMessage(*v.m, v.f, i);
      m.field(map_key(entry), PbField{&entry, value_field, -1, v.depth, v.b});
    }
    return;
  }
  auto l = w.list();
  for (int i = 0; i < n && v.b->take(); ++i) l.item(PbField{v.m, v.f, i, v.depth, v.b});
}

void immunizer_sensor_value(sensor::ValueWriter& w, const PbMessage& v) {
  std::vector<const pb::FieldDescriptor*> fields;
  v.m->GetReflection()->ListFields(*v.m, &fields);
  auto m = w.map();
  for (const auto* f : fields) {
    if (!v.b->take()) break;
    m.field(f->name(), PbField{v.m, f, -1, v.depth, v.b});
  }
}

std::string_view code_name(::grpc::StatusCode c) {
  switch (c) {
    case ::grpc::OK:
      return "OK";
    case ::grpc::CANCELLED:
      return "CANCELLED";
    case ::grpc::UNKNOWN:
      return "UNKNOWN";
    case ::grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case ::grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case ::grpc::NOT_FOUND:
      return "NOT_FOUND";
    case ::grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case ::grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case ::grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case ::grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case ::grpc::ABORTED:
      return "ABORTED";
    case ::grpc::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case ::grpc::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case ::grpc::INTERNAL:
      return "INTERNAL";
    case ::grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case ::grpc::DATA_LOSS:
      return "DATA_LOSS";
    case ::grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

std::string_view view(const ::grpc::string_ref& s) { return {s.data(), s.size()}; }

}  // namespace

struct InterceptorFactory::Shared {
  std::shared_ptr<sensor::Sensor> sensor;
  std::shared_ptr<effector::Effector> effector;
  InterceptorOptions opt;
  ProxyTrust trust;
  InterceptorStats stats;
  Shared(std::shared_ptr<sensor::Sensor> s, std::shared_ptr<effector::Effector> e,
         InterceptorOptions o)
      : sensor(std::move(s)),
        effector(std::move(e)),
        opt(std::move(o)),
        trust(opt.principal.proxies) {}
};

namespace {

class Interceptor final : public ::grpc::experimental::Interceptor {
 public:
  Interceptor(std::shared_ptr<InterceptorFactory::Shared> shared,
              ::grpc::experimental::ServerRpcInfo* info)
      : s_(std::move(shared)), info_(info), method_(info->method() ? info->method() : "") {}
  ~Interceptor() override {
    if (!recorded_) record(std::nullopt);  // ended without a status (client gone)
  }

  void Intercept(::grpc::experimental::InterceptorBatchMethods* m) override {
    try {
      if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA))
        on_metadata(m);
      if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) on_message(m);
      if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE) && denied_)
        replace_response(m);
      if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
        ::grpc::Status st = m->GetSendStatus();
        if (denied_) {
          st = ::grpc::Status(::grpc::PERMISSION_DENIED, "denied by Immunizer");
          m->ModifySendStatus(st);
        }
        record(st);
      }
    } catch (...) {
      // Nothing may escape into gRPC; the call goes on unrecorded.
    }
    m->Proceed();
  }

 private:
  void on_metadata(::grpc::experimental::InterceptorBatchMethods* m) {
    s_->stats.calls.fetch_add(1, std::memory_order_relaxed);
    auto* md = m->GetRecvInitialMetadata();
    if (md) md->erase(::grpc::string_ref(kDeniedKey));  // only we set it
    std::vector<std::string_view> fwd;
    const auto& po = s_->opt.principal;
    if (md) {
      const char* fk =
          s_->trust.header() == ForwardedHeader::kForwarded ? "forwarded" : "x-forwarded-for";
      if (s_->trust.any()) {
        const auto range = md->equal_range(::grpc::string_ref(fk));
        for (auto it = range.first; it != range.second; ++it) fwd.push_back(view(it->second));
      }
      auto first = [&](const std::string& key) -> std::string {
        const auto it = md->find(::grpc::string_ref(key));
        return it == md->end() ? std::string() : std::string(view(it->second));
      };
      if (!po.session_cookies.empty()) {
        const auto range = md->equal_range(::grpc::string_ref("cookie"));
        for (const auto& name : po.session_cookies) {
          for (auto it = range.first; it != range.second && who_.session.empty(); ++it)
            who_.session = std::string(cookie_value(view(it->second), name));
          if (!who_.session.empty()) break;
        }
      }
      for (const auto& k : po.session_headers)
        if (who_.session.empty()) who_.session = first(k);
      for (const auto& k : po.user_headers)
        if (who_.user.empty()) who_.user = first(k);
    }
    who_.ip = s_->trust.client_address(info_->server_context()->peer(), fwd);
    if (s_->effector && !s_->effector->allows(who_, method_)) {
      denied_ = true;
      s_->stats.denied.fetch_add(1, std::memory_order_relaxed);
      static const std::string kKey = kDeniedKey, kOne = "1";
      if (md) md->emplace(::grpc::string_ref(kKey), ::grpc::string_ref(kOne));
    }
  }

  void on_message(::grpc::experimental::InterceptorBatchMethods* m) {
    auto* msg = static_cast<pb::Message*>(m->GetRecvMessage());
    if (!msg) return;
    ++messages_;
    if (messages_ == 1 && s_->opt.record_request && s_->sensor) {
      request_.reset(msg->New());
      request_->CopyFrom(*msg);
    }
    if (denied_) msg->Clear();  // the handler never sees the payload
  }

  void replace_response(::grpc::experimental::InterceptorBatchMethods* m) {
    const auto* msg = static_cast<const pb::Message*>(m->GetSendMessage());
    if (!msg) return;
    empty_response_.reset(msg->New());
    m->ModifySendMessage(empty_response_.get());
  }

  void record(const std::optional<::grpc::Status>& st) noexcept {
    recorded_ = true;
    if (!s_->sensor) return;
    sensor::CallScope scope(*s_->sensor, method_);
    if (!scope.recording()) return;
    scope.principal(who_);
    if (request_) {
      Budget b{s_->opt.max_depth, s_->opt.max_elements};
      std::vector<const pb::FieldDescriptor*> fields;
      request_->GetReflection()->ListFields(*request_, &fields);
      for (const auto* f : fields) {
        if (!b.take()) break;
        scope.arg(f->name(), PbField{request_.get(), f, -1, 0, &b});
      }
      if (b.truncated) {
        scope.label("grpc.truncated", "true");
        s_->stats.truncated.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (messages_ > 1) scope.label("grpc.messages", std::to_string(messages_));
    if (denied_) scope.label("immunizer.denied", "effector");
    if (!st) {
      scope.error("CANCELLED", "the call ended without a status");
      return;
    }
    if (st->ok()) {
      scope.result(int64_t{0});
    } else {
      scope.error(code_name(st->error_code()), st->error_message());
    }
  }

  std::shared_ptr<InterceptorFactory::Shared> s_;
  ::grpc::experimental::ServerRpcInfo* info_;
  std::string method_;
  sensor::Principal who_;
  std::unique_ptr<pb::Message> request_, empty_response_;
  uint64_t messages_ = 0;
  bool denied_ = false;
  bool recorded_ = false;
};

}  // namespace

InterceptorFactory::InterceptorFactory(std::shared_ptr<sensor::Sensor> sensor,
                                       std::shared_ptr<effector::Effector> effector,
                                       InterceptorOptions options)
    : shared_(
          std::make_shared<Shared>(std::move(sensor), std::move(effector), std::move(options))) {}

::grpc::experimental::Interceptor* InterceptorFactory::CreateServerInterceptor(
    ::grpc::experimental::ServerRpcInfo* info) {
  return new Interceptor(shared_, info);
}

std::shared_ptr<const InterceptorStats> InterceptorFactory::stats() const {
  return std::shared_ptr<const InterceptorStats>(shared_, &shared_->stats);
}

std::shared_ptr<const InterceptorStats> install(::grpc::ServerBuilder& builder,
                                                std::shared_ptr<sensor::Sensor> sensor,
                                                std::shared_ptr<effector::Effector> effector,
                                                InterceptorOptions options) {
  auto f = std::make_unique<InterceptorFactory>(std::move(sensor), std::move(effector),
                                                std::move(options));
  auto stats = f->stats();
  std::vector<std::unique_ptr<::grpc::experimental::ServerInterceptorFactoryInterface>> v;
  v.push_back(std::move(f));
  builder.experimental().SetInterceptorCreators(std::move(v));
  return stats;
}

bool denied(const ::grpc::ServerContextBase& context) {
  return context.client_metadata().count(::grpc::string_ref(kDeniedKey)) > 0;
}

}  // namespace immunizer::integrations::grpc
