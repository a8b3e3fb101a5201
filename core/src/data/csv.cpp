// read_csv: a table of numbers from a CSV file, parsed by a small state machine over the whole
// file (RFC 4180 quoting, with pandas' leniency about spaces and line endings). Every error
// names the file and the line a record starts on, so a user can open the file there.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "strata/data/readers.h"
#include "strata/error.h"
#include "strata/ops.h"

namespace strata::data {

namespace fs = std::filesystem;

namespace {

// Splits the text of a CSV file into records of fields. next() gives one record at a time
// and skips blank lines.
class CsvParser {
 public:
  CsvParser(std::string_view text, const CsvOptions& options, std::string file)
      : text_(text), options_(options), file_(std::move(file)) {
    // A UTF-8 byte-order mark, as spreadsheet programs write, is not part of the first name.
    if (text_.starts_with("\xEF\xBB\xBF")) {
      position_ = 3;
    }
  }

  // The next record into `fields`; false at the end of the text. record_line() is then the
  // line (1-based) where the record starts.
  bool next(std::vector<std::string>& fields) {
    skip_blank_lines();
    if (at_end()) {
      return false;
    }
    record_line_ = line_;
    fields.clear();
    for (;;) {
      fields.push_back(next_field());
      if (at_end()) {
        return true;
      }
      const char c = text_[position_];
      if (c == options_.delimiter) {
        ++position_;
        continue;
      }
      STRATA_ASSERT(c == '\n' || c == '\r', "read_csv: a field ended at ", int{c});
      skip_line_end();
      return true;
    }
  }

  int64_t record_line() const { return record_line_; }

 private:
  bool at_end() const { return position_ >= text_.size(); }

  // Spaces and tabs around a field are padding, unless they are the delimiter.
  bool is_padding(char c) const { return (c == ' ' || c == '\t') && c != options_.delimiter; }

  void skip_line_end() {
    if (text_[position_] == '\r' && position_ + 1 < text_.size() && text_[position_ + 1] == '\n') {
      ++position_;
    }
    ++position_;
    ++line_;
  }

  // Lines holding nothing, or only padding, are no records (pandas skips them too).
  void skip_blank_lines() {
    for (;;) {
      size_t probe = position_;
      while (probe < text_.size() && is_padding(text_[probe])) {
        ++probe;
      }
      if (probe < text_.size() && (text_[probe] == '\n' || text_[probe] == '\r')) {
        position_ = probe;
        skip_line_end();
      } else {
        if (probe >= text_.size()) {
          position_ = probe;
        }
        return;
      }
    }
  }

  std::string next_field() {
    while (!at_end() && is_padding(text_[position_])) {
      ++position_;
    }
    std::string field;
    if (!at_end() && text_[position_] == options_.quote) {
      const int64_t opened_on = line_;
      ++position_;
      for (;;) {
        STRATA_CHECK(!at_end(), "read_csv: ", file_, ": the quoted field opened on line ",
                     opened_on, " is never closed");
        const char c = text_[position_];
        if (c == options_.quote) {
          if (position_ + 1 < text_.size() && text_[position_ + 1] == options_.quote) {
            field += c;  // "" inside quotes is one quote
            position_ += 2;
            continue;
          }
          ++position_;
          break;
        }
        if (c == '\n' || (c == '\r' && !(position_ + 1 < text_.size() &&
                                         text_[position_ + 1] == '\n'))) {
          ++line_;
        }
        field += c;
        ++position_;
      }
      while (!at_end() && is_padding(text_[position_])) {
        ++position_;
      }
      STRATA_CHECK(at_end() || text_[position_] == options_.delimiter ||
                       text_[position_] == '\n' || text_[position_] == '\r',
                   "read_csv: ", file_, ": line ", line_, ": text after the closing quote of \"",
                   field, "\" (a field is either all quoted or not quoted)");
      return field;
    }
    const size_t start = position_;
    while (!at_end() && text_[position_] != options_.delimiter && text_[position_] != '\n' &&
           text_[position_] != '\r') {
      ++position_;
    }
    size_t end = position_;
    while (end > start && is_padding(text_[end - 1])) {
      --end;
    }
    return std::string(text_.substr(start, end - start));
  }

  std::string_view text_;
  const CsvOptions& options_;
  std::string file_;
  size_t position_ = 0;
  int64_t line_ = 1;
  int64_t record_line_ = 1;
};

bool is_missing(const std::string& cell) {
  return cell.empty() || cell == "NA" || cell == "N/A" || cell == "NaN" || cell == "nan" ||
         cell == "null";
}

// The number a cell spells, or false. Accepts what strtod does in the C locale except hex
// floats: an optional sign, digits with an optional point and exponent, inf, nan.
bool parse_number(const std::string& cell, double& value) {
  std::string_view text = cell;
  if (text.starts_with('+')) {
    text.remove_prefix(1);  // from_chars takes '-' but not '+'
    if (text.starts_with('-') || text.starts_with('+')) {
      return false;
    }
  }
  if (text.empty()) {
    return false;
  }
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "\"" : ", \"") + names[i] + "\"";
  }
  return out;
}

}  // namespace

CsvTable read_csv(const fs::path& path, const CsvOptions& options) {
  const std::string file = path.string();
  STRATA_CHECK(options.delimiter != options.quote && options.delimiter != '\n' &&
                   options.delimiter != '\r' && options.quote != '\n' && options.quote != '\r',
               "read_csv: the delimiter ('", options.delimiter, "') and the quote ('",
               options.quote, "') must differ and not be line breaks");
  std::error_code status_error;
  STRATA_CHECK(fs::is_regular_file(path, status_error), "read_csv: ", file,
               fs::exists(path, status_error) ? " is not a regular file" : " does not exist");
  const auto size = fs::file_size(path, status_error);
  STRATA_CHECK(!status_error, "read_csv: cannot read the size of ", file, ": ",
               status_error.message());
  std::ifstream in(path, std::ios::binary);
  STRATA_CHECK(in.is_open(), "read_csv: cannot open ", file);
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  STRATA_CHECK(in.gcount() == static_cast<std::streamsize>(text.size()), "read_csv: read ",
               in.gcount(), " bytes of ", file, ", expected ", text.size(),
               " (did the file change while being read?)");

  STRATA_CHECK(options.skip_rows >= 0, "read_csv: skip_rows must be at least 0 (got ",
               options.skip_rows, ") for ", file);
  CsvParser parser(text, options, file);
  std::vector<std::string> fields;
  for (int64_t skipped = 0; skipped < options.skip_rows; ++skipped) {
    STRATA_CHECK(parser.next(fields), "read_csv: ", file, " has ", skipped,
                 skipped == 1 ? " record" : " records", ", fewer than the ", options.skip_rows,
                 " to skip");
  }
  STRATA_CHECK(parser.next(fields), "read_csv: ", file, " has no records",
               options.skip_rows > 0 ? " after the skipped ones"
               : text.empty()        ? " (the file is empty)"
                                     : " (only blank lines)",
               options.header ? ", not even a header" : "");

  CsvTable table;
  std::vector<double> values;
  const auto add_record = [&](int64_t row) {
    const size_t columns = table.columns.size();
    STRATA_CHECK(fields.size() == columns, "read_csv: ", file, ": line ", parser.record_line(),
                 " (data row ", row, ") has ", fields.size(),
                 fields.size() == 1 ? " field but " : " fields but ",
                 options.header ? "the header names " : "the first row has ", columns,
                 options.header ? " columns" : "");
    for (size_t c = 0; c < columns; ++c) {
      double value = 0.0;
      if (options.missing_as_nan && is_missing(fields[c])) {
        value = std::numeric_limits<double>::quiet_NaN();
      } else {
        STRATA_CHECK(parse_number(fields[c], value), "read_csv: ", file, ": line ",
                     parser.record_line(), " (data row ", row, "), column ", c + 1, " of ",
                     columns, " (\"", table.columns[c], "\"): \"", fields[c],
                     "\" is not a number",
                     fields[c].empty() && !options.missing_as_nan
                         ? " (an empty cell; CsvOptions::missing_as_nan reads it as NaN)"
                         : "");
      }
      values.push_back(value);
    }
  };

  int64_t rows = 0;
  if (options.header) {
    std::set<std::string> seen;
    for (const std::string& name : fields) {
      STRATA_CHECK(seen.insert(name).second, "read_csv: ", file, ": the header (line ",
                   parser.record_line(), ") names the column \"", name, "\" twice");
    }
    table.columns = fields;
  } else {
    for (size_t c = 0; c < fields.size(); ++c) {
      table.columns.push_back(std::to_string(c));
    }
    add_record(++rows);
  }
  while (parser.next(fields)) {
    add_record(++rows);
  }
  table.values = from_vector<double>(
      values, {rows, static_cast<int64_t>(table.columns.size())});
  return table;
}

int64_t CsvTable::column_index(const std::string& name) const {
  const auto it = std::find(columns.begin(), columns.end(), name);
  STRATA_CHECK(it != columns.end(), "CsvTable: no column \"", name, "\"; the columns are ",
               joined(columns));
  return it - columns.begin();
}

Tensor CsvTable::column(const std::string& name) const {
  return values.select(1, column_index(name)).contiguous();
}

FeaturesTarget split_features_target(const CsvTable& table, const std::string& target) {
  const int64_t target_index = table.column_index(target);
  STRATA_CHECK(table.columns.size() >= 2, "split_features_target: the table has only the column \"",
               target, "\", so no features are left");
  FeaturesTarget out;
  std::vector<int64_t> kept;
  for (int64_t c = 0; c < static_cast<int64_t>(table.columns.size()); ++c) {
    if (c != target_index) {
      kept.push_back(c);
      out.feature_names.push_back(table.columns[static_cast<size_t>(c)]);
    }
  }
  out.features = index_select(table.values, 1, from_vector<int64_t>(kept));
  out.target = table.column(target);
  return out;
}

}  // namespace strata::data
