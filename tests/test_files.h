// Helpers for tests that write files: a temporary directory of their own, and a check that
// generated markup (SVG, HTML) is well formed.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

namespace strata::test {

// A directory of its own under the system's temporary directory (named after the running
// test), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("strata_" + std::string(info != nullptr ? info->name() : "test") + "_" +
             std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }
  // The names in the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

// Empty when `text` is well formed: every element closed in order, no stray '<', and every
// '&' starting an entity. Otherwise says what is wrong and where.
inline std::string markup_problem(const std::string& text) {
  std::vector<std::string> open;
  const std::regex entity("^&(amp|lt|gt|quot|#[0-9]+);");
  for (size_t at = 0; at < text.size(); ++at) {
    if (text[at] == '&') {
      if (!std::regex_search(text.substr(at, 8), entity)) return "bare & at " + std::to_string(at);
      continue;
    }
    if (text[at] != '<') continue;
    const size_t end = text.find('>', at);
    if (end == std::string::npos) return "unclosed < at " + std::to_string(at);
    const std::string tag = text.substr(at + 1, end - at - 1);
    if (tag.find('<') != std::string::npos) return "< inside a tag at " + std::to_string(at);
    at = end;
    if (tag.empty() || tag[0] == '!' || tag[0] == '?' || tag.back() == '/') continue;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) {
        return "</" + name + "> closes <" + (open.empty() ? std::string("nothing") : open.back()) +
               ">";
      }
      open.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" \n\t"));
    // HTML's void elements have no closing tag.
    if (name == "meta" || name == "br" || name == "hr" || name == "img" || name == "link") continue;
    open.push_back(name);
  }
  return open.empty() ? "" : "<" + open.back() + "> is never closed";
}

}  // namespace strata::test
