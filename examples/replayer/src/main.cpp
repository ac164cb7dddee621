// immunizer-replay: CSIC 2010 traffic against the demo shop. Wiring only; see replayer.hpp.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "immunizer/common/build_info.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/replay/generator.hpp"
#include "immunizer/replay/replayer.hpp"

using namespace immunizer;
using json = nlohmann::json;

// The summaries' JSON: nlohmann's macros write the members under their own names; to_json()
// adds the figures derived from them.
namespace immunizer::replay {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PhaseSummary, name, sent, ok, forbidden, not_found, other,
                                   failed, seconds)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PipelineCounts, sent, scored, lost, denied, rejected,
                                   deadletters, sampled_out, unreachable)
}  // namespace immunizer::replay

namespace {
json to_json(const replay::PhaseSummary& s) {
  json j = s;
  j["requests_per_second"] = s.requests_per_second();
  return j;
}
void print(const replay::PhaseSummary& s) {
  std::printf(
      "%-10s sent %6lu in %6.1f s (%7.0f req/s): 2xx %lu, 403 %lu, 404 %lu, other %lu, no answer "
      "%lu\n",
      s.name.c_str(), (unsigned long)s.sent, s.seconds, s.requests_per_second(),
      (unsigned long)s.ok, (unsigned long)s.forbidden, (unsigned long)s.not_found,
      (unsigned long)s.other, (unsigned long)s.failed);
  std::fflush(stdout);
}
json to_json(const replay::AttackResult& a) {
  return {{"attacker", to_json(a.attacker)},
          {"bystander", to_json(a.bystander)},
          {"blocked", a.blocked},
          {"attacks_before_block", a.attacks_before_block},
          {"seconds_to_block", a.seconds_to_block},
          {"seconds_from_last_allowed_to_block", a.seconds_from_last_allowed}};
}
void print(const replay::AttackResult& a) {
  print(a.attacker);
  print(a.bystander);
  if (a.blocked)
    std::printf(
        "attacker blocked: first 403 after %lu allowed attack requests, %.2f s after the first "
        "attack "
        "(%.3f s after the last allowed one); bystander got %lu x 2xx, %lu x 403\n",
        (unsigned long)a.attacks_before_block, a.seconds_to_block, a.seconds_from_last_allowed,
        (unsigned long)a.bystander.ok, (unsigned long)a.bystander.forbidden);
  else
    std::printf("attacker NOT blocked after %lu attack requests\n", (unsigned long)a.attacker.sent);
  std::fflush(stdout);
}
json to_json(const replay::PipelineCounts& c) {
  json j = c;
  j["unaccounted"] = c.unaccounted();
  return j;
}
std::vector<monitor::csic::Request> take(std::vector<monitor::csic::Request> v, uint64_t n) {
  if (n > 0 && v.size() > n) v.resize(n);
  return v;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Replays CSIC 2010 (or generated) requests against the Immunizer demo shop"};
  std::string target_url = "http://127.0.0.1:8088", dataset, scenario = "demo", json_out;
  uint64_t train_count = 0, mix_count = 2000, rounds = 10;
  double rate = 0;
  int concurrency = 4;
  replay::AttackOptions atk;
  int64_t time_limit_s = 1800;
  std::vector<std::string> settle_urls, count_urls;
  double max_lag = 2000;
  app.set_version_flag("--version", common::version_line("immunizer-replay"));
  app.add_option("--target", target_url, "shop base URL")->capture_default_str();
  bool generate = false;
  std::string write_dataset;
  replay::GeneratorOptions gen;
  auto* ds = app.add_option("--dataset", dataset, "folder with the CSIC 2010 files")
                 ->check(CLI::ExistingDirectory);
  auto* gf =
      app.add_flag(
             "--generate", generate,
             "built-in generated traffic (browsing sessions and attacks) instead of CSIC 2010")
          ->excludes(ds);
  app.add_option("--seed", gen.seed, "generator seed")->capture_default_str();
  app.add_option("--write-dataset", write_dataset,
                 "write the generated traffic as CSIC-format files into this folder and exit (for "
                 "immunizer eval csic)")
      ->needs(gf);
  app.add_option("--scenario", scenario,
                 "train | mix | attack | demo (train, then rounds of mix + attack)")
      ->check(CLI::IsMember({"train", "mix", "attack", "demo"}))
      ->capture_default_str();
  app.add_option("--train-count", train_count, "training requests to send (0: all)")
      ->capture_default_str();
  app.add_option("--mix-count", mix_count, "normal+attack test requests per mix phase (0: all)")
      ->capture_default_str();
  app.add_option("--rounds", rounds, "demo: rounds of mix + attack")->capture_default_str();
  int64_t round_settle_s = 120;
  app.add_option("--round-settle", round_settle_s,
                 "seconds at most to wait after each round for the pipeline to catch up before "
                 "its counts are printed (under another load generator's traffic it never idles)")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  bool no_mix = false;
  app.add_flag("--no-mix", no_mix,
               "demo: rounds of attack only, without the mix phase (when another load generator "
               "plays the normal traffic: the mix's CSIC attacks are one-request sessions that "
               "plan rightly blocks, each counted by execute's circuit breaker)");
  app.add_option("--rate", rate, "requests per second (0: as fast as the shop answers)")
      ->capture_default_str();
  app.add_option("--concurrency", concurrency, "parallel connections")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--attack-count", atk.max_attacks, "attack requests at most per attack")
      ->capture_default_str();
  app.add_option("--attack-rate", atk.rate, "attacker requests per second")->capture_default_str();
  app.add_option("--time-limit", time_limit_s, "seconds before the run stops itself")
      ->capture_default_str();
  app.add_option("--json", json_out, "write a JSON summary here");
  app.add_option(
      "--settle-url", settle_urls,
      "after training, wait until the service behind this /metrics URL has caught up (repeatable)");
  app.add_option("--count-url", count_urls,
                 "a /metrics URL whose record counters (sensor sent and dropped, analyze scored, "
                 "records lost, dead letters) make up the line printed after each round "
                 "(repeatable; the --settle-url pages count too)");
  app.add_option("--max-lag", max_lag,
                 "pause while the consumer lag of the --settle-url services is above this many "
                 "messages (until it is under half of it; 0: never pause)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::atomic<bool> stop{false};
  common::install_stop_signals(stop, "replay");
  json summary;
  try {
    if (dataset.empty() && !generate)
      throw std::invalid_argument("give --dataset DIR (CSIC 2010) or --generate");
    const auto target = replay::Target::parse(target_url);
    replay::GeneratedTraffic generated;
    if (generate) {
      generated = replay::generate(gen);
      std::printf(
          "generated %zu training, %zu normal and %zu attack requests (seed %llu; attack classes:",
          generated.training.size(), generated.normal.size(), generated.anomalous.size(),
          static_cast<unsigned long long>(gen.seed));
      for (const auto& c : replay::attack_classes()) std::printf(" %s", c.c_str());
      std::printf(")\n");
      if (!write_dataset.empty()) {
        std::filesystem::create_directories(write_dataset);
        replay::write_csic(write_dataset + "/normalTrafficTraining.txt", generated.training);
        replay::write_csic(write_dataset + "/normalTrafficTest.txt", generated.normal);
        replay::write_csic(write_dataset + "/anomalousTrafficTest.txt", generated.anomalous);
        std::printf("wrote %s/{normalTrafficTraining,normalTrafficTest,anomalousTrafficTest}.txt\n",
                    write_dataset.c_str());
        return 0;
      }
    }
    const auto load = [&](const char* f) {
      if (generate) {
        const std::string n = f;
        return n.starts_with("normalTrafficTraining") ? generated.training
               : n.starts_with("normalTrafficTest")   ? generated.normal
                                                      : generated.anomalous;
      }
      auto v = monitor::csic::read_file(dataset + "/" + f);
      std::printf("loaded %zu requests from %s\n", v.size(), f);
      return v;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(time_limit_s);
    auto left = [&] {
      return std::chrono::duration_cast<std::chrono::seconds>(deadline -
                                                              std::chrono::steady_clock::now());
    };
    replay::LagPacer pacer(settle_urls, max_lag);
    std::vector<std::string> all_urls = settle_urls;
    all_urls.insert(all_urls.end(), count_urls.begin(), count_urls.end());
    // After a phase: wait until the pipeline caught up, then print what went in and what came
    // out of it, from the services' own counters.
    auto report = [&](const std::string& what) {
      if (all_urls.empty()) return;
      if (!settle_urls.empty())
        replay::wait_for_pipeline(
            settle_urls, std::min(left(), std::chrono::seconds(round_settle_s)), stop, nullptr);
      const auto c = replay::pipeline_counts(all_urls);
      std::printf("%s: %s; paced %lu times (%.1f s) on the pipeline's lag\n", what.c_str(),
                  replay::describe(c).c_str(), (unsigned long)pacer.pauses(),
                  pacer.paused_seconds());
      std::fflush(stdout);
      json j = to_json(c);
      j["after"] = what;
      j["paced"] = pacer.pauses();
      j["paced_seconds"] = pacer.paused_seconds();
      summary["counts"].push_back(j);
    };
    replay::SendOptions base;
    base.rate = rate;
    base.concurrency = concurrency;
    base.pacer = max_lag > 0 && !settle_urls.empty() ? &pacer : nullptr;
    if (scenario == "train" || scenario == "demo") {
      auto train = take(load("normalTrafficTraining.txt.gz"), train_count);
      base.trace_prefix = "train";
      base.time_limit = left();
      const auto train_t0 = std::chrono::steady_clock::now();
      auto s = replay::send_all(target, train, base, stop, "training");
      print(s);
      summary["training"] = to_json(s);
      if (!settle_urls.empty()) {
        std::printf("waiting for the pipeline to learn from the training traffic...\n");
        std::fflush(stdout);
        double last_printed = -1, consumed_total = 0;
        auto t0 = std::chrono::steady_clock::now();
        const bool ok = replay::wait_for_pipeline(
            settle_urls, std::min(left(), std::chrono::seconds(600)), stop, [&](double n) {
              consumed_total = n;
              if (n != last_printed &&
                  std::chrono::steady_clock::now() - t0 > std::chrono::seconds(5)) {
                std::printf("  %.0f messages consumed so far\n", n);
                std::fflush(stdout);
                last_printed = n;
                t0 = std::chrono::steady_clock::now();
              }
            });
        // The last 3 s were the quiet period that proved the pipeline idle.
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - train_t0).count() -
            3.0;
        std::printf(ok ? "pipeline caught up: %.0f messages consumed by the watched services in "
                         "%.1f s from the first "
                         "training request (%.0f/s)\n"
                       : "pipeline still behind after %.0f messages in %.1f s (%.0f/s); going on\n",
                    consumed_total, secs, consumed_total / std::max(secs, 1e-9));
        summary["settled"] = ok;
        summary["pipeline"] = {{"messages_consumed", consumed_total}, {"seconds", secs}};
      }
      report("after training");
    }
    std::vector<monitor::csic::Request> normal, anomalous;
    if (scenario != "train") {
      normal = load("normalTrafficTest.txt.gz");
      anomalous = load("anomalousTrafficTest.txt.gz");
    }
    const uint64_t n_rounds = scenario == "demo" ? rounds : 1;
    size_t mix_at = 0, atk_at = 0;
    for (uint64_t round = 0; round < n_rounds && !stop && left().count() > 0; ++round) {
      if (scenario == "mix" || (scenario == "demo" && !no_mix)) {
        auto mix = replay::interleave(normal, anomalous);
        if (mix_count > 0) {
          std::vector<monitor::csic::Request> part;
          for (size_t i = 0; i < mix_count && i < mix.size(); ++i)
            part.push_back(mix[(mix_at + i) % mix.size()]);
          mix_at += part.size();
          mix = std::move(part);
        }
        base.trace_prefix = "mix";
        base.time_limit = left();
        auto s = replay::send_all(target, mix, base, stop, "mix");
        print(s);
        summary["mix"].push_back(to_json(s));
      }
      if (scenario == "attack" || scenario == "demo") {
        std::vector<monitor::csic::Request> atk_reqs(
            anomalous.begin() + static_cast<long>(atk_at % anomalous.size()), anomalous.end());
        atk_at += atk.max_attacks;
        atk.session = "ATTACKER" + std::to_string(1000000 + round) + "000000000000000000AA";
        // A fresh address in a fresh /24 each round (shared address space 100.64.0.0/10), so
        // that an address or prefix block of one round does not stop the next round's attacker
        // before its own detection.
        atk.ip = "100.64." + std::to_string(round % 256) + ".7";
        atk.time_limit = std::min(left(), std::chrono::seconds(120));
        auto a = replay::attack(target, atk_reqs, normal, atk, stop);
        print(a);
        summary["attacks"].push_back(to_json(a));
      }
      report("after round " + std::to_string(round + 1));
      if (scenario == "demo" && round + 1 < n_rounds)
        for (int i = 0; i < 50 && !stop; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } catch (const std::exception& e) {
    std::cerr << "immunizer-replay: " << e.what() << "\n";
    return 1;
  }
  if (!json_out.empty()) std::ofstream(json_out) << summary.dump(2) << "\n";
  return 0;
}
