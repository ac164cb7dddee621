// IncidentStore on its own: schema creation is idempotent across reopenings,
// ":memory:" works, rollback discards, actions wait for their alarm and then
// link.
#include "immunizer/dashboard/store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "test_records.hpp"

using namespace immunizer;
using namespace immunizer::dashboard;
using namespace immunizer::dashboard::testing;

namespace {

TEST(Store, ReopenRollbackAndLinking) {
  char tmpl[] = "/tmp/immunizer-store-XXXXXX";
  const std::filesystem::path dir = mkdtemp(tmpl);
  const std::string path = (dir / "d.db").string();
  int64_t id = 0;
  {
    IncidentStore s(path);
    Incident i;
    i.principal_key = "session:x";
    i.first_seen = i.last_seen = 5;
    s.begin();
    id = s.insert_incident(i);
    s.commit();
    s.begin();
    Incident j = i;
    s.insert_incident(j);
    s.rollback();  // discarded
    ActionRecord r;
    r.action_id = "act";
    r.alarm_id = "al";
    r.status = "applied";
    s.put_action(r, 0);
    EXPECT_EQ(s.count_actions(id), 0);
    EXPECT_EQ(s.link_actions("al", id), 1);
    EXPECT_EQ(s.link_actions("al", id), 0);  // already linked
    EXPECT_EQ(s.count_actions(id), 1);
  }
  {
    IncidentStore s(path);  // same file: schema statements are idempotent
    auto [rows, total] = s.list({});
    EXPECT_EQ(total, 1);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].id, id);
    EXPECT_EQ(s.action("act")->status, "applied");
    auto open = s.latest_open("session:x");
    ASSERT_TRUE(open);
    EXPECT_EQ(open->id, id);
    EXPECT_FALSE(s.latest_open("session:y"));
  }
  IncidentStore mem(":memory:");
  EXPECT_EQ(mem.list({}).second, 0);
  EXPECT_THROW(IncidentStore((dir / "missing" / "d.db").string()), StoreError);
  std::filesystem::remove_all(dir);
}

}  // namespace
