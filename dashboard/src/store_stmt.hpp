// Private to the incident store (store.cpp, store_views.cpp): the prepared-statement wrapper
// and the action record's JSON form. Not thread-safe (the store serialises its callers).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "immunizer/dashboard/store.hpp"

namespace immunizer::dashboard {

// A prepared statement; bind() numbers from 1. Finalised on destruction.
class IncidentStore::Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      throw StoreError(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v) {
    check(sqlite3_bind_double(s_, i, v));
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind_blob(int i, const std::string& v) {
    check(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw StoreError(std::string("sqlite step: ") + sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  double f64(int c) const { return sqlite3_column_double(s_, c); }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }
  std::string blob(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }
  bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  // The current row as a JSON object: every column under its name (its alias: `at AS
  // at_unix_nanos`), an INTEGER as a number, a REAL as a floating-point number, NULL as null,
  // TEXT (and a BLOB) as a string.
  nlohmann::json row_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (int c = 0; c < sqlite3_column_count(s_); ++c) {
      auto& v = j[sqlite3_column_name(s_, c)];
      switch (sqlite3_column_type(s_, c)) {
        case SQLITE_INTEGER:
          v = i64(c);
          break;
        case SQLITE_FLOAT:
          v = f64(c);
          break;
        case SQLITE_NULL:
          break;
        default:
          v = text(c);
      }
    }
    return j;
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw StoreError(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// An action record as stored in actions.record (json), and back.
nlohmann::json action_to_json(const ActionRecord& a);
ActionRecord action_from_json(const nlohmann::json& j);

}  // namespace immunizer::dashboard
