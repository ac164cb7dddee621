// The ops page (dashboard/web/*), embedded into the binary at build time so the service
// needs no files at runtime. Immutable; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace immunizer::dashboard {

struct WebAsset {
  std::string_view path;  // "/index.html", "/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

// "/" maps to "/index.html"; nullptr when there is no such file.
inline const WebAsset* find_web_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (size_t i = 0; i < kWebAssetCount; ++i)
    if (kWebAssets[i].path == path) return &kWebAssets[i];
  return nullptr;
}

}  // namespace immunizer::dashboard
