// Offline CSIC 2010 feature dump: parses the dataset files, turns every request into the
// CallRecords the instrumented shop emits, runs one FeatureExtractor over the training file
// and then over the normal and anomalous test requests interleaved (learning continues, as in
// the live monitor), and writes CSV:
//   OUT/train.csv, OUT/test.csv  one row per REQUEST: the record-level columns (struct:*,
//                                outcome:*, principal:*, any:*) of the outer http.request record
//                                then of the inner endpoint record (zeros when there is none),
//                                then has_inner, then the label (0 normal, 1 anomalous).
//   OUT/models/<n>.csv           one row per RECORD of one model key with its full final
//                                schema: request,is_train,label,<feature names...>
//                                (rows from before the last schema change are dropped, as
//                                analyze restarts learning on a schema version change).
//   OUT/models/index.csv         n,model_key
// Usage: csic_features --training F --normal F --anomalous F --out DIR
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "immunizer/monitor/csic.hpp"
#include "immunizer/monitor/features.hpp"

namespace fs = std::filesystem;
using immunizer::monitor::FeatureExtractor;
namespace csic = immunizer::monitor::csic;

namespace {

struct ModelOut {
  int n = 0;
  uint32_t version = 0;
  std::unique_ptr<std::ofstream> file;
};

std::string csv_escape(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"')
      o += "\"\"";
    else
      o += c;
  }
  return o + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  std::string training, normal, anomalous, out_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--training")
      training = argv[i + 1];
    else if (k == "--normal")
      normal = argv[i + 1];
    else if (k == "--anomalous")
      anomalous = argv[i + 1];
    else if (k == "--out")
      out_dir = argv[i + 1];
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 2;
    }
  }
  if (training.empty() || normal.empty() || anomalous.empty() || out_dir.empty()) {
    std::cerr << "usage: csic_features --training F --normal F --anomalous F --out DIR\n";
    return 2;
  }
  try {
    fs::create_directories(fs::path(out_dir) / "models");
    const auto train_reqs = csic::read_file(training);
    const auto normal_reqs = csic::read_file(normal);
    const auto anomalous_reqs = csic::read_file(anomalous);
    std::cerr << "requests: training " << train_reqs.size() << ", normal " << normal_reqs.size()
              << ", anomalous " << anomalous_reqs.size() << "\n";

    // Test order: normal and anomalous interleaved in proportion, deterministic.
    struct Item {
      const csic::Request* req;
      int label;
    };
    std::vector<Item> test;
    size_t a = 0, b = 0;
    while (a < normal_reqs.size() || b < anomalous_reqs.size()) {
      const double fa = normal_reqs.empty() ? 1.0 : static_cast<double>(a) / normal_reqs.size();
      const double fb =
          anomalous_reqs.empty() ? 1.0 : static_cast<double>(b) / anomalous_reqs.size();
      if (b >= anomalous_reqs.size() || (a < normal_reqs.size() && fa <= fb))
        test.push_back({&normal_reqs[a++], 0});
      else
        test.push_back({&anomalous_reqs[b++], 1});
    }

    FeatureExtractor fx;
    std::map<std::string, ModelOut> models;
    std::ofstream index(fs::path(out_dir) / "models" / "index.csv");
    index << "n,model_key\n";
    std::ofstream train_csv(fs::path(out_dir) / "train.csv"),
        test_csv(fs::path(out_dir) / "test.csv");
    std::ofstream requests_tsv(fs::path(out_dir) / "requests.tsv");  // request -> what it was
    std::vector<std::string> global_names;  // record-level columns, same for every model
    immunizer::v1::FeatureVector v;
    std::string why;
    uint64_t seq = 0;
    int64_t ts = 1'600'000'000'000'000'000LL;
    size_t request_no = 0;
    bool header_done = false;

    auto process = [&](const csic::Request& req, int label, bool is_train) {
      csic::ShopRecordOptions o;
      o.seq = seq;
      seq += 2;
      o.timestamp_unix_nanos = ts;
      ts += 20'000'000;  // 50 requests/s
      o.trace = std::to_string(request_no);
      const auto recs = csic::to_call_records(req, o);
      std::vector<double> row;
      for (size_t i = 0; i < 2; ++i) {
        std::vector<double> g;
        if (i < recs.size()) {
          if (!fx.extract(recs[i], &v, &why)) {
            std::cerr << "record refused: " << why << "\n";
            row.insert(row.end(), global_names.size(), 0.0);
            continue;
          }
          if (global_names.empty()) {
            for (int k = 0; k < v.schema().names_size(); ++k) {
              const std::string& n = v.schema().names(k);
              if (n.rfind("arg:", 0) == 0) break;
              global_names.push_back(n);
            }
          }
          g.assign(v.values().begin(), v.values().begin() + global_names.size());
          auto& mo = models[v.model_key()];
          if (!mo.file || mo.version != v.schema().version()) {
            if (!mo.file) {
              mo.n = static_cast<int>(models.size()) - 1;
              index << mo.n << "," << csv_escape(v.model_key()) << "\n";
            }
            mo.version = v.schema().version();
            mo.file = std::make_unique<std::ofstream>(
                fs::path(out_dir) / "models" / (std::to_string(mo.n) + ".csv"), std::ios::trunc);
            *mo.file << "request,is_train,label";
            for (const auto& n : v.schema().names()) *mo.file << "," << csv_escape(n);
            *mo.file << "\n";
          }
          *mo.file << request_no << "," << (is_train ? 1 : 0) << "," << label;
          for (double x : v.values()) *mo.file << "," << x;
          *mo.file << "\n";
        } else {
          g.assign(global_names.size(), 0.0);
        }
        row.insert(row.end(), g.begin(), g.end());
      }
      row.push_back(recs.size() > 1 ? 1.0 : 0.0);
      if (!header_done) {
        for (auto* f : {&train_csv, &test_csv}) {
          for (const char* side : {"outer.", "inner."}) {
            for (const auto& n : global_names) *f << side << n << ",";
          }
          *f << "has_inner,label\n";
        }
        header_done = true;
      }
      requests_tsv << request_no << "\t" << label << "\t" << req.method << " " << req.path << "?"
                   << req.query << "\t" << req.body << "\n";
      auto& f = is_train ? train_csv : test_csv;
      for (double x : row) f << x << ",";
      f << label << "\n";
      ++request_no;
    };

    for (const auto& r : train_reqs) process(r, 0, true);
    for (const auto& it : test) process(*it.req, it.label, false);
    for (const auto& k : fx.model_keys()) {
      const auto st = fx.stats(k);
      std::cerr << k << ": records " << st.records << ", features " << st.features << ", paths "
                << st.paths << ", unseen-path records " << st.unseen_path_records << ", memory "
                << st.memory_bytes / 1024 << " KiB, snapshot " << fx.snapshot(k).size() / 1024
                << " KiB\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "csic_features: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
