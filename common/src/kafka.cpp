#include "immunizer/common/kafka.hpp"

#include <librdkafka/rdkafka.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>

#include "immunizer/common/config.hpp"
#include "immunizer/common/logging.hpp"

namespace immunizer::common {

KafkaSettings KafkaSettings::from_config(const Config& c) {
  KafkaSettings s;
  s.bootstrap = c.get_string("kafka.bootstrap", s.bootstrap);
  s.topic_prefix = c.get_string("kafka.topic_prefix", s.topic_prefix);
  s.security_protocol = c.get_enum("kafka.security_protocol", s.security_protocol,
                                   {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"});
  s.sasl_mechanism = c.get_string("kafka.sasl_mechanism", "");
  s.sasl_username = c.get_string("kafka.sasl_username", "");
  s.sasl_password = c.get_secret("kafka.sasl_password");
  s.ssl_ca_location = c.get_string("kafka.ssl_ca_location", "");
  s.ssl_certificate_location = c.get_string("kafka.ssl_certificate_location", "");
  s.ssl_key_location = c.get_string("kafka.ssl_key_location", "");
  if (s.ssl_certificate_location.empty() != s.ssl_key_location.empty())
    c.error(
        "config keys 'kafka.ssl_certificate_location' and 'kafka.ssl_key_location': set both (the "
        "service's client certificate for mutual TLS to Kafka) or neither");
  if (!s.ssl_certificate_location.empty() && s.security_protocol != "ssl" &&
      s.security_protocol != "sasl_ssl")
    c.error(
        "config key 'kafka.ssl_certificate_location': needs kafka.security_protocol ssl or "
        "sasl_ssl, not " +
        s.security_protocol);
  if (s.bootstrap.empty()) c.error("config key 'kafka.bootstrap': must not be empty");
  return s;
}

std::map<std::string, std::string> KafkaSettings::properties() const {
  std::map<std::string, std::string> p{{"bootstrap.servers", bootstrap},
                                       {"security.protocol", security_protocol}};
  if (!sasl_mechanism.empty()) p["sasl.mechanisms"] = sasl_mechanism;
  if (!sasl_username.empty()) p["sasl.username"] = sasl_username;
  if (!sasl_password.empty()) p["sasl.password"] = sasl_password;
  if (!ssl_ca_location.empty()) p["ssl.ca.location"] = ssl_ca_location;
  if (!ssl_certificate_location.empty()) p["ssl.certificate.location"] = ssl_certificate_location;
  if (!ssl_key_location.empty()) p["ssl.key.location"] = ssl_key_location;
  return p;
}

Topics Topics::with_prefix(const std::string& p) {
  return Topics{p + "calls",   p + "features", p + "scores", p + "alarms",    p + "plans",
                p + "actions", p + "feedback", p + "models", p + "deadletter"};
}

std::vector<std::string> Topics::all() const {
  return {calls, features, scores, alarms, plans, actions, feedback, models, deadletter};
}

KafkaMetrics::KafkaMetrics(prometheus::Registry& r, std::string service)
    : service_(std::move(service)),
      consumed_family_(counter_family(r, "immunizer_kafka_messages_consumed_total",
                                      "Messages consumed, by topic")),
      produced_family_(counter_family(r, "immunizer_kafka_messages_produced_total",
                                      "Messages acknowledged by the broker, by topic")),
      deadletter_family_(counter_family(r, "immunizer_deadletters_total",
                                        "Messages sent to the dead-letter topic, by reason")),
      lost_family_(counter_family(
          r, "immunizer_records_lost_total",
          "Messages a consumer never saw: its offset was reset past unread data, by topic")),
      lag_family_(gauge_family(r, "immunizer_kafka_consumer_lag",
                               "Messages between the committed position and the end of the "
                               "partition (set at each commit, and at most once a second "
                               "while polling)")),
      delivery_failures_(register_counter(r, "immunizer_kafka_delivery_failures_total",
                                          "Produced messages the broker did not acknowledge",
                                          {{"service", service_}})) {}

void KafkaMetrics::delivery_failed(uint64_t n) {
  delivery_failures_.Increment(static_cast<double>(n));
}

prometheus::Counter& KafkaMetrics::counter(prometheus::Family<prometheus::Counter>& f,
                                           std::map<std::string, prometheus::Counter*>& cache,
                                           const std::string& label_name,
                                           const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache.find(value);
  if (it != cache.end()) return *it->second;
  auto& c = f.Add({{"service", service_}, {label_name, value}});
  cache[value] = &c;
  return c;
}

void KafkaMetrics::consumed(const std::string& topic, uint64_t n) {
  counter(consumed_family_, consumed_, "topic", topic).Increment(static_cast<double>(n));
}
void KafkaMetrics::produced(const std::string& topic, uint64_t n) {
  counter(produced_family_, produced_, "topic", topic).Increment(static_cast<double>(n));
}
void KafkaMetrics::records_lost(const std::string& topic, uint64_t n) {
  counter(lost_family_, lost_, "topic", topic).Increment(static_cast<double>(n));
}
void KafkaMetrics::deadletter(const std::string& reason) {
  counter(deadletter_family_, deadletters_, "reason", reason).Increment();
}
void KafkaMetrics::lag(const std::string& topic, int32_t partition, int64_t lag) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string k = topic + "/" + std::to_string(partition);
  auto it = lag_.find(k);
  if (it == lag_.end()) {
    it = lag_.emplace(k, &lag_family_.Add({{"service", service_},
                                           {"topic", topic},
                                           {"partition", std::to_string(partition)}}))
             .first;
  }
  it->second->Set(static_cast<double>(lag));
}

namespace {

using Properties = std::map<std::string, std::string>;

// The connection settings, then a client's own defaults, then the caller's overrides.
Properties client_properties(const KafkaSettings& s, const Properties& defaults,
                             const Properties& overrides) {
  Properties props = s.properties();
  for (const auto& [k, v] : defaults) props[k] = v;
  for (const auto& [k, v] : overrides) props[k] = v;
  return props;
}

// A client of `type` with `conf` (which it takes over); throws naming `what` when it cannot.
rd_kafka_t* new_client(rd_kafka_type_t type, rd_kafka_conf_t* conf, const char* what) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) throw std::runtime_error(std::string(what) + ": " + err);
  return rk;
}

rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      // Not the value: it may be a SASL password.
      throw std::runtime_error("kafka property " + k + ": " + err);
    }
  }
  return conf;
}

void log_cb(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  static LogThrottle throttle(std::chrono::seconds(10));
  uint64_t suppressed = 0;
  if (level <= 4 && throttle.allow(&suppressed))
    logger("kafka")->warn("{}: {} (+{} similar suppressed)", fac, buf, suppressed);
}

// Errors that sending the same message again cannot fix.
bool is_permanent(rd_kafka_resp_err_t e) {
  switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return true;
    default:
      return false;
  }
}

class KafkaProducer final : public Producer {
 public:
  KafkaProducer(const KafkaSettings& s, const std::string& client_id, KafkaMetrics* metrics,
                const std::map<std::string, std::string>& overrides)
      : metrics_(metrics) {
    // A request the broker never answers (a connection that went dead without a reset, as the
    // mock cluster's downed broker leaves some) is retried on a new connection after 10 s, not
    // librdkafka's 30 s (requests) / 60 s (socket): within message.timeout.ms, so not lost.
    rd_kafka_conf_t* conf = make_conf(client_properties(s,
                                                        {{"client.id", client_id},
                                                         {"enable.idempotence", "true"},
                                                         {"acks", "all"},
                                                         {"linger.ms", "5"},
                                                         {"compression.type", "lz4"},
                                                         {"message.timeout.ms", "60000"},
                                                         {"request.timeout.ms", "10000"},
                                                         {"socket.timeout.ms", "10000"}},
                                                        overrides));
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &KafkaProducer::on_delivery);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rk_ = new_client(RD_KAFKA_PRODUCER, conf, "kafka producer");
  }
  ~KafkaProducer() override {
    rd_kafka_flush(rk_, 10000);
    rd_kafka_destroy(rk_);
  }

  void produce(const std::string& topic, std::string_view key, std::string_view payload) override {
    auto* topic_name = new std::string(topic);  // freed in the delivery report
    for (;;) {
      const rd_kafka_resp_err_t e = rd_kafka_producev(
          rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
          RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(topic_name), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk_, 50);  // backpressure: serve delivery reports until there is room
        continue;
      }
      delete topic_name;
      note_failure(e);
      if (metrics_) metrics_->delivery_failed();
      logger("kafka")->error("produce to {} failed: {}", topic, rd_kafka_err2str(e));
      return;
    }
    rd_kafka_poll(rk_, 0);
  }

  FlushResult flush(std::chrono::milliseconds timeout) override {
    const rd_kafka_resp_err_t e = rd_kafka_flush(rk_, static_cast<int>(timeout.count()));
    FlushResult r;
    r.complete = (e == RD_KAFKA_RESP_ERR_NO_ERROR);
    r.failed = failed_.exchange(0);
    r.permanent = permanent_.exchange(0);
    const int first = first_permanent_.exchange(0);
    if (r.permanent > 0)
      r.permanent_reason = rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(first));
    return r;
  }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaProducer*>(opaque);
    auto* topic = static_cast<std::string*>(m->_private);
    if (m->err) {
      self->note_failure(m->err);
      if (self->metrics_) self->metrics_->delivery_failed();
      static LogThrottle throttle;
      uint64_t suppressed = 0;
      if (throttle.allow(&suppressed))
        logger("kafka")->error("delivery to {} failed: {} (+{} suppressed)", topic ? *topic : "?",
                               rd_kafka_err2str(m->err), suppressed);
    } else if (self->metrics_ && topic) {
      self->metrics_->produced(*topic);
    }
    delete topic;
  }

  void note_failure(rd_kafka_resp_err_t e) {
    failed_.fetch_add(1);
    if (is_permanent(e)) {
      permanent_.fetch_add(1);
      int none = 0;
      first_permanent_.compare_exchange_strong(none, static_cast<int>(e));
    }
  }

  rd_kafka_t* rk_ = nullptr;
  KafkaMetrics* metrics_;
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> permanent_{0};
  std::atomic<int> first_permanent_{0};  // error code of the first permanent failure, 0: none
};

class KafkaConsumer final : public Consumer {
 public:
  KafkaConsumer(const KafkaSettings& s, const std::string& group,
                const std::vector<std::string>& topics, KafkaMetrics* metrics,
                const std::map<std::string, std::string>& overrides)
      : metrics_(metrics) {
    // An unanswered request (commit, heartbeat, fetch) on a dead connection holds back every
    // request behind it on that connection: give up on it after 10 s, not 60 s, and reconnect.
    rd_kafka_conf_t* conf =
        make_conf(client_properties(s,
                                    {{"group.id", group},
                                     {"enable.auto.commit", "false"},
                                     {"enable.auto.offset.store", "false"},
                                     {"auto.offset.reset", "earliest"},
                                     {"session.timeout.ms", "10000"},
                                     {"heartbeat.interval.ms", "1000"},
                                     {"fetch.wait.max.ms", "20"},
                                     {"topic.metadata.refresh.interval.ms", "5000"},
                                     {"socket.timeout.ms", "10000"}},
                                    overrides));
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_offset_commit_cb(conf, &KafkaConsumer::on_commit);
    rk_ = new_client(RD_KAFKA_CONSUMER, conf, "kafka consumer");
    rd_kafka_poll_set_consumer(rk_);
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
    for (const auto& t : topics)
      rd_kafka_topic_partition_list_add(list, t.c_str(), RD_KAFKA_PARTITION_UA);
    const auto e = rd_kafka_subscribe(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) throw std::runtime_error(std::string("kafka subscribe: ") + rd_kafka_err2str(e));
  }
  ~KafkaConsumer() override {
    close();
    rd_kafka_destroy(rk_);
  }

  std::vector<Message> poll(size_t max, std::chrono::milliseconds timeout) override {
    std::vector<Message> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < max) {
      // Only the batch's first message is waited for: the clock is read for that one alone
      // (once per message it cost the monitor 2% of its CPU).
      int wait_ms = 0;
      if (out.empty())
        wait_ms =
            std::max<int>(0, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  deadline - std::chrono::steady_clock::now())
                                                  .count()));
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait_ms);
      if (!m) {
        if (!out.empty() || std::chrono::steady_clock::now() >= deadline) break;
        continue;
      }
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          static LogThrottle throttle;
          uint64_t suppressed = 0;
          if (throttle.allow(&suppressed))
            logger("kafka")->warn("consume: {} (+{} suppressed)", rd_kafka_message_errstr(m),
                                  suppressed);
        }
        rd_kafka_message_destroy(m);
        continue;
      }
      Message msg;
      msg.topic = rd_kafka_topic_name(m->rkt);
      msg.partition = m->partition;
      msg.offset = m->offset;
      check_continuity(msg.topic, msg.partition, msg.offset);
      if (m->key) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) msg.payload.assign(static_cast<const char*>(m->payload), m->len);
      msg.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
      rd_kafka_message_destroy(m);
      if (metrics_) metrics_->consumed(msg.topic);
      out.push_back(std::move(msg));
    }
    check_assignment();
    report_lag();
    return out;
  }

  uint64_t partitions_gained() const override { return gained_; }

  // Asynchronous: the request goes out and the next batch is processed while the broker
  // answers (its result is served by a later poll, on_commit). At-least-once holds: only a
  // batch whose outputs were acknowledged is committed, and a commit that fails leaves the
  // group's offset where it was, so those messages are read again after a restart. close()
  // commits the last offsets synchronously.
  void commit(const std::vector<Message>& batch) override {
    if (batch.empty()) return;
    std::map<std::pair<std::string, int32_t>, int64_t> next;
    for (const auto& m : batch) {
      auto& v = next[{m.topic, m.partition}];
      v = std::max(v, m.offset + 1);
    }
    const auto e = commit_offsets(next, /*async=*/true);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      logger("kafka")->warn("commit failed: {} (messages will be re-read after a restart)",
                            rd_kafka_err2str(e));
      return;  // the lag keeps counting from the last offset that was committed
    }
    for (const auto& [tp, off] : next) {
      int64_t& c = committed_[tp];
      c = std::max(c, off);
      set_lag(tp.first, tp.second, c);
      int64_t& u = async_committed_[tp];
      u = std::max(u, off);
    }
  }

  void rewind(const std::vector<Message>& batch) override {
    std::map<std::pair<std::string, int32_t>, int64_t> first;
    for (const auto& m : batch) {
      auto it = first.find({m.topic, m.partition});
      if (it == first.end() || m.offset < it->second) first[{m.topic, m.partition}] = m.offset;
    }
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(first.size()));
    for (const auto& [tp, off] : first)
      rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = off;
    for (const auto& [tp, off] : first) next_[tp] = off;  // reading again from there is no gap
    if (rd_kafka_error_t* err = rd_kafka_seek_partitions(rk_, list, 5000)) {
      logger("kafka")->error("rewind failed: {}", rd_kafka_error_string(err));
      rd_kafka_error_destroy(err);
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  void close() override {
    if (!closed_) {
      closed_ = true;
      // The asynchronous commits of the last batches may still be on their way: the offsets
      // are committed once more, waiting for the answer, before the consumer leaves its group.
      if (!async_committed_.empty()) {
        const auto e = commit_offsets(async_committed_, /*async=*/false);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
          logger("kafka")->warn(
              "final commit failed: {} (messages will be re-read after a restart)",
              rd_kafka_err2str(e));
        async_committed_.clear();
      }
      rd_kafka_consumer_close(rk_);
    }
  }

 private:
  // Offset resets past unread data (the broker dropped what this group had not read yet,
  // librdkafka then resets to the earliest offset with only a warning) are losses: each
  // partition's next offset is tracked (from the group's committed offset on first sight),
  // and a message further on counts the messages in between as lost, with an error.
  // Counts an assignment that gained a partition (a rebalance gave this member work another
  // had), so the stage can restore the models of keys it has not held since.
  void check_assignment() {
    rd_kafka_topic_partition_list_t* list = nullptr;
    if (rd_kafka_assignment(rk_, &list) != RD_KAFKA_RESP_ERR_NO_ERROR || list == nullptr) return;
    std::set<std::pair<std::string, int32_t>> now;
    for (int i = 0; i < list->cnt; ++i) now.emplace(list->elems[i].topic, list->elems[i].partition);
    rd_kafka_topic_partition_list_destroy(list);
    if (std::any_of(now.begin(), now.end(),
                    [this](const auto& tp) { return !assigned_.count(tp); }))
      ++gained_;
    // A partition that went to another member is not committed again by close().
    for (auto it = async_committed_.begin(); it != async_committed_.end();)
      it = now.count(it->first) ? std::next(it) : async_committed_.erase(it);
    assigned_ = std::move(now);
  }
  void check_continuity(const std::string& topic, int32_t partition, int64_t offset) {
    const auto tp = std::make_pair(topic, partition);
    auto it = next_.find(tp);
    int64_t expected = -1;
    if (it == next_.end()) {
      expected = committed_offset(topic, partition);
    } else {
      expected = it->second;
      // Another member may have read the partition meanwhile (rebalance): only what the group
      // has not committed is a loss.
      if (offset > expected) {
        expected = std::max(expected, committed_offset(topic, partition));
        int64_t& c = committed_[tp];
        c = std::max(c, expected);
      }
    }
    // Where this consumer's lag counts from until it commits on the partition.
    if (!committed_.count(tp)) committed_[tp] = std::max(expected, offset);
    if (expected >= 0 && offset > expected) {
      const int64_t lost = offset - expected;
      if (metrics_) metrics_->records_lost(topic, static_cast<uint64_t>(lost));
      lost_ += static_cast<uint64_t>(lost);
      logger("kafka")->error(
          "{}[{}]: {} messages lost: the consumer was reset from offset {} to {} (the broker no "
          "longer had "
          "them; raise retention or partitions, or consume faster)",
          topic, partition, lost, expected, offset);
    }
    next_[tp] = offset + 1;
  }

  // immunizer_kafka_consumer_lag{topic,partition}: the partition's end (the high watermark of
  // the last fetch, cached by librdkafka: no request) minus `base`, the offset this consumer
  // has committed.
  void set_lag(const std::string& topic, int32_t partition, int64_t base) {
    int64_t lo = 0, hi = 0;
    if (metrics_ && base >= 0 &&
        rd_kafka_get_watermark_offsets(rk_, topic.c_str(), partition, &lo, &hi) == 0 && hi >= 0)
      metrics_->lag(topic, partition, std::max<int64_t>(0, hi - base));
  }

  // At most once a second, from poll(): the lag of every assigned partition, so a consumer
  // that reads on but stops committing (a batch re-read forever, failing commits) shows its
  // lag growing instead of the value of its last commit. Local calls only (the assignment,
  // cached watermarks and fetch positions). A partition this consumer has committed nothing
  // on counts from where it started reading (the group's committed offset, or its first
  // message), else from its fetch position.
  void report_lag() {
    const auto now = std::chrono::steady_clock::now();
    if (!metrics_ || now < next_lag_report_) return;
    next_lag_report_ = now + std::chrono::seconds(1);
    rd_kafka_topic_partition_list_t* list = nullptr;
    if (rd_kafka_assignment(rk_, &list) != RD_KAFKA_RESP_ERR_NO_ERROR || list == nullptr) return;
    for (int i = 0; i < list->cnt; ++i) {
      const auto& el = list->elems[i];
      const auto tp = std::make_pair(std::string(el.topic), el.partition);
      int64_t base = -1;
      if (const auto it = committed_.find(tp); it != committed_.end()) {
        base = it->second;
      } else {
        rd_kafka_topic_partition_list_t* one = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(one, el.topic, el.partition);
        if (rd_kafka_position(rk_, one) == RD_KAFKA_RESP_ERR_NO_ERROR && one->elems[0].err == 0)
          base = one->elems[0].offset;  // < 0 (RD_KAFKA_OFFSET_INVALID) before the first fetch
        rd_kafka_topic_partition_list_destroy(one);
      }
      set_lag(tp.first, tp.second, base);
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  rd_kafka_resp_err_t commit_offsets(const std::map<std::pair<std::string, int32_t>, int64_t>& next,
                                     bool async) {
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
    for (const auto& [tp, off] : next)
      rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = off;
    const auto e = rd_kafka_commit(rk_, list, async ? 1 : 0);
    rd_kafka_topic_partition_list_destroy(list);
    return e;
  }

  // The broker's answer to an asynchronous commit (served by rd_kafka_consumer_poll, on the
  // consumer's thread). A partition it refused counts its lag from the last offset the broker
  // did accept for it; its messages are read again after a restart (at-least-once).
  static void on_commit(rd_kafka_t*, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    auto* self = static_cast<KafkaConsumer*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || offsets == nullptr) return;
    for (int i = 0; i < offsets->cnt; ++i) {
      const auto& el = offsets->elems[i];
      const rd_kafka_resp_err_t e = el.err ? el.err : err;
      const auto tp = std::make_pair(std::string(el.topic), el.partition);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        int64_t& a = self->accepted_[tp];
        a = std::max(a, el.offset);
        continue;
      }
      logger("kafka")->warn(
          "commit of {}[{}]@{} failed: {} (messages will be re-read after a restart)", el.topic,
          el.partition, el.offset, rd_kafka_err2str(e));
      if (const auto it = self->accepted_.find(tp); it != self->accepted_.end()) {
        self->committed_[tp] = it->second;
        self->set_lag(tp.first, tp.second, it->second);
      }
    }
  }

  int64_t committed_offset(const std::string& topic, int32_t partition) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
    int64_t off = -1;
    if (rd_kafka_committed(rk_, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        list->elems[0].err == 0)
      off = list->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(list);
    return off;  // < 0: nothing committed (RD_KAFKA_OFFSET_INVALID)
  }

  rd_kafka_t* rk_ = nullptr;
  KafkaMetrics* metrics_;
  bool closed_ = false;
  std::map<std::pair<std::string, int32_t>, int64_t> next_;  // next offset expected per partition
  // Per partition, the offset this consumer committed last (or where it started reading).
  std::map<std::pair<std::string, int32_t>, int64_t> committed_;
  // Per partition, the offsets committed asynchronously since the last synchronous commit
  // (close() commits them once more and waits), and the last the broker confirmed.
  std::map<std::pair<std::string, int32_t>, int64_t> async_committed_;
  std::map<std::pair<std::string, int32_t>, int64_t> accepted_;
  std::chrono::steady_clock::time_point next_lag_report_{};
  uint64_t lost_ = 0;
  std::set<std::pair<std::string, int32_t>> assigned_;  // at the last poll
  uint64_t gained_ = 0;

 public:
  uint64_t lost() const override { return lost_; }
};

}  // namespace

rd_kafka_s* make_kafka_reader(const KafkaSettings& s, const Properties& overrides,
                              const char* what) {
  return new_client(RD_KAFKA_CONSUMER, make_conf(client_properties(s, {}, overrides)), what);
}

namespace {
// One metadata request with no topics: the answer lists the brokers only; any broker will do.
rd_kafka_resp_err_t ask_for_brokers(rd_kafka_t* rk, std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t e =
      rd_kafka_metadata(rk, 0, nullptr, &md, static_cast<int>(timeout.count()));
  if (md) rd_kafka_metadata_destroy(md);
  return e;
}
}  // namespace

BrokerWatch::BrokerWatch(const KafkaSettings& s, std::chrono::milliseconds interval,
                         OnChange on_change)
    : settings_(s), interval_(interval), on_change_(std::move(on_change)) {
  rk_ = new_watch_client();
  thread_ = std::thread([this] { run(); });
}

// Reconnects quickly once a broker is back, and gives up on a request that a dead connection
// never answers after a few intervals instead of librdkafka's 60 s socket timeout.
rd_kafka_s* BrokerWatch::new_watch_client() const {
  const auto socket_ms = std::max<int64_t>(1000, 3 * interval_.count());
  rd_kafka_conf_t* conf =
      make_conf(client_properties(settings_,
                                  {{"client.id", "broker-watch"},
                                   {"reconnect.backoff.max.ms", "1000"},
                                   {"socket.timeout.ms", std::to_string(socket_ms)}},
                                  {}));
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {
    // Connection errors are what it measures; the service's own clients log them.
  });
  return new_client(RD_KAFKA_PRODUCER, conf, "kafka broker watch");
}

BrokerWatch::~BrokerWatch() {
  {
    std::lock_guard<std::mutex> l(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
  rd_kafka_destroy(rk_);
}

void BrokerWatch::run() {
  bool first = true;
  while (!quit_) {
    const auto t0 = std::chrono::steady_clock::now();
    rd_kafka_resp_err_t e = ask_for_brokers(rk_, interval_);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && (first || reachable_)) {
      // The request may have gone to a broker that is down, or sat on a connection a downed
      // broker left hung (the mock cluster does this): before saying the cluster is unreachable,
      // ask again from a fresh client, which connects to the bootstrap brokers anew. Once
      // unreachable, that client (with no connection to hang on) keeps asking.
      rd_kafka_destroy(rk_);
      rk_ = new_watch_client();
      e = ask_for_brokers(rk_, interval_);
    }
    const bool ok = e == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (first || ok != reachable_.load()) {
      reachable_ = ok;
      first = false;
      if (on_change_)
        on_change_(ok, ok ? ""
                          : std::string("no broker answered within ") +
                                std::to_string(interval_.count()) + " ms: " + rd_kafka_err2str(e));
    }
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_until(l, t0 + interval_, [this] { return quit_.load(); });
  }
}

std::unique_ptr<Producer> make_kafka_producer(const KafkaSettings& s, const std::string& client_id,
                                              KafkaMetrics* metrics,
                                              const std::map<std::string, std::string>& overrides) {
  return std::make_unique<KafkaProducer>(s, client_id, metrics, overrides);
}

std::unique_ptr<Consumer> make_kafka_consumer(const KafkaSettings& s, const std::string& group,
                                              const std::vector<std::string>& topics,
                                              KafkaMetrics* metrics,
                                              const std::map<std::string, std::string>& overrides) {
  return std::make_unique<KafkaConsumer>(s, group, topics, metrics, overrides);
}

}  // namespace immunizer::common
