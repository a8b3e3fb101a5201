// The safetensors reader and writer, the atomic file writer, and io::save / io::load for
// modules. The reader trusts nothing in the file: every length and offset is checked against
// the bytes actually present before it is used, so a malformed or hostile file ends in
// strata::Error, never in a read out of bounds (see the rules in io/safetensors.h).
#include "strata/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "strata/autograd.h"
#include "strata/error.h"
#include "strata/nn/module.h"

namespace strata::io {
namespace {

// NOTE: tensors are copied to and from the file with memcpy, which is only right on a
// little-endian host (every machine Strata targets).
static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian values; a big-endian host would need byte swaps");

// The reference reader's limit: a header past it is taken as corrupt rather than allocated.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Deeper JSON than this is never a safetensors header (its deepest value sits at depth 3); the
// limit keeps a hostile header from exhausting the parser's memory with nesting.
constexpr int kMaxJsonDepth = 8;

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// How a dtype named in a file is read into Strata.
enum class Widen { None, SignedToInt64, UnsignedToInt64 };

struct FileDType {
  const char* name;
  size_t size;    // bytes per element in the file
  DType strata;   // what Strata makes of it
  Widen widen;
};

// Every dtype the format defines that Strata can hold, exactly or widened.
constexpr FileDType kFileDTypes[] = {
    {"F32", 4, DType::Float32, Widen::None},
    {"F64", 8, DType::Float64, Widen::None},
    {"I64", 8, DType::Int64, Widen::None},
    {"U8", 1, DType::UInt8, Widen::None},
    {"BOOL", 1, DType::Bool, Widen::None},
    {"F16", 2, DType::Float16, Widen::None},
    {"BF16", 2, DType::BFloat16, Widen::None},
    {"I32", 4, DType::Int32, Widen::None},
    {"I8", 1, DType::Int64, Widen::SignedToInt64},
    {"I16", 2, DType::Int64, Widen::SignedToInt64},
    {"U16", 2, DType::Int64, Widen::UnsignedToInt64},
    {"U32", 4, DType::Int64, Widen::UnsignedToInt64},
};
// Defined by the format but with no lossless home in Strata's dtypes.
constexpr const char* kUnsupportedFileDTypes[] = {"U64", "F8_E4M3", "F8_E5M2", "F4", "F6_E2M3",
                                                  "F6_E3M2", "E8M0", "C64"};

const char* file_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::UInt8: return "U8";
    case DType::Bool: return "BOOL";
    case DType::Float16: return "F16";
    case DType::BFloat16: return "BF16";
    case DType::Int32: return "I32";
  }
  STRATA_ASSERT(false, "file_dtype_name: unhandled dtype");
}

// The order the safetensors package writes tensors in: by its dtype enumeration, largest
// first (I64, F64, F32, I32, BF16, F16, U8, BOOL for Strata's types), which keeps each tensor
// aligned to its element size.
int write_rank(DType dtype) {
  switch (dtype) {
    case DType::Int64: return 0;
    case DType::Float64: return 1;
    case DType::Float32: return 2;
    case DType::Int32: return 3;
    case DType::BFloat16: return 4;
    case DType::Float16: return 5;
    case DType::UInt8: return 6;
    case DType::Bool: return 7;
  }
  return 8;
}

template <typename T>
T read_le(const uint8_t* data) {
  T value;
  std::memcpy(&value, data, sizeof(T));
  return value;
}

struct Entry {
  std::string name;
  const FileDType* dtype;
  Shape shape;
  uint64_t begin, end;
};

// Parses the header, failing on a repeated key at any level (nlohmann keeps the last one
// silently, and a file with two tensors of one name is ambiguous) and on deep nesting.
Json parse_header(const char* begin, const char* end, const std::string& where) {
  std::vector<std::set<std::string>> keys_per_object;
  std::string duplicate;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    STRATA_CHECK(depth <= kMaxJsonDepth, where, ": the header nests deeper than ", kMaxJsonDepth,
                 " levels; a safetensors header never does");
    if (event == Json::parse_event_t::object_start) {
      keys_per_object.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!keys_per_object.empty()) keys_per_object.pop_back();
    } else if (event == Json::parse_event_t::key && !keys_per_object.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!keys_per_object.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(begin, end, callback, /*allow_exceptions=*/true,
                         /*ignore_comments=*/false);
  } catch (const Json::exception& e) {
    STRATA_CHECK(false, where, ": the header is not valid JSON (", e.what(), ")");
  }
  STRATA_CHECK(duplicate.empty(), where, ": the header names \"", duplicate,
               "\" twice; names must be unique");
  STRATA_CHECK(header.is_object(), where, ": the header is a JSON ", header.type_name(),
               ", not an object");
  return header;
}

Metadata parse_metadata(const Json& value, const std::string& where) {
  STRATA_CHECK(value.is_object(), where, ": \"__metadata__\" is a JSON ", value.type_name(),
               ", not an object of strings");
  Metadata metadata;
  for (const auto& [key, text] : value.items()) {
    STRATA_CHECK(text.is_string(), where, ": \"__metadata__\" entry \"", key, "\" is a JSON ",
                 text.type_name(), ", not a string");
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

uint64_t non_negative_integer(const Json& value, const std::string& what, const std::string& where) {
  STRATA_CHECK(value.is_number_integer(), where, ": ", what, " is ", value.dump(),
               ", not an integer");
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  const int64_t signed_value = value.get<int64_t>();
  STRATA_CHECK(signed_value >= 0, where, ": ", what, " is ", signed_value, ", which is negative");
  return static_cast<uint64_t>(signed_value);
}

Entry parse_entry(const std::string& name, const Json& info, uint64_t buffer_size,
                  const std::string& where) {
  const std::string tensor = where + ": tensor \"" + name + "\"";
  STRATA_CHECK(info.is_object(), tensor, " is described by a JSON ", info.type_name(),
               ", not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    STRATA_CHECK(info.contains(field), tensor, " has no \"", field, "\" (it has ", info.dump(),
                 ")");
  }
  Entry entry;
  entry.name = name;

  const Json& dtype = info["dtype"];
  STRATA_CHECK(dtype.is_string(), tensor, ": dtype is ", dtype.dump(), ", not a string");
  const std::string dtype_text = dtype.get<std::string>();
  entry.dtype = nullptr;
  for (const FileDType& candidate : kFileDTypes) {
    if (dtype_text == candidate.name) entry.dtype = &candidate;
  }
  if (entry.dtype == nullptr) {
    const bool known = std::any_of(std::begin(kUnsupportedFileDTypes),
                                   std::end(kUnsupportedFileDTypes),
                                   [&](const char* n) { return dtype_text == n; });
    STRATA_CHECK(!known, tensor, " has dtype ", dtype_text,
                 ", which Strata cannot hold (it reads F32, F64, F16, BF16, I64, I32, U8, BOOL, "
                 "and I8, I16, U16, U32 widened to I64)");
    STRATA_CHECK(false, tensor, " has unknown dtype \"", dtype_text, "\"");
  }

  const Json& shape = info["shape"];
  STRATA_CHECK(shape.is_array(), tensor, ": shape is ", shape.dump(), ", not an array");
  // numel * element size, computed without overflow: a shape whose size passes the buffer's
  // cannot match its offsets anyway.
  bool too_large = false, has_zero_dim = false;
  uint64_t numel = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    const uint64_t size =
        non_negative_integer(shape[d], "dim " + std::to_string(d) + " of its shape", tensor);
    STRATA_CHECK(size <= static_cast<uint64_t>(INT64_MAX), tensor, ": dim ", d, " (", size,
                 ") is too large");
    entry.shape.push_back(static_cast<int64_t>(size));
    if (size == 0) has_zero_dim = true;
    if (!too_large && size != 0 && numel > buffer_size / size) too_large = true;
    if (!too_large) numel *= size;
  }
  if (has_zero_dim) {
    too_large = false;
    numel = 0;
  }

  const Json& offsets = info["data_offsets"];
  STRATA_CHECK(offsets.is_array() && offsets.size() == 2, tensor, ": data_offsets is ",
               offsets.dump(), ", not [begin, end]");
  entry.begin = non_negative_integer(offsets[0], "data_offsets[0]", tensor);
  entry.end = non_negative_integer(offsets[1], "data_offsets[1]", tensor);
  STRATA_CHECK(entry.begin <= entry.end, tensor, ": data_offsets [", entry.begin, ", ",
               entry.end, "] has begin > end");
  STRATA_CHECK(entry.end <= buffer_size, tensor, ": data_offsets [", entry.begin, ", ",
               entry.end, "] runs past the data, which holds ", buffer_size, " bytes");
  const uint64_t bytes = entry.end - entry.begin;
  STRATA_CHECK(!too_large && numel * entry.dtype->size == bytes, tensor, ": shape ",
               shape.dump(), " of ", dtype_text, " needs ",
               too_large ? std::string("more bytes than the file has")
                         : std::to_string(numel * entry.dtype->size) + " bytes",
               " but data_offsets [", entry.begin, ", ", entry.end, "] hold ", bytes);
  return entry;
}

// Sorted by begin, the tensors must tile the data exactly: no hole, no overlap, nothing after.
void check_coverage(std::vector<Entry>& entries, uint64_t buffer_size, const std::string& where) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    STRATA_CHECK(entry.begin >= covered, where, ": tensor \"", entry.name, "\" [", entry.begin,
                 ", ", entry.end, ") overlaps tensor \"", previous ? previous->name : "",
                 "\", which ends at ", covered);
    STRATA_CHECK(entry.begin == covered, where, ": bytes [", covered, ", ", entry.begin,
                 ") before tensor \"", entry.name,
                 "\" belong to no tensor; the format requires the data to be fully covered");
    covered = entry.end;
    previous = &entry;
  }
  STRATA_CHECK(covered == buffer_size, where, ": bytes [", covered, ", ", buffer_size,
               ") at the end of the data belong to no tensor; the format requires the data "
               "to be fully covered");
}

Tensor make_tensor(const Entry& entry, const uint8_t* data, const std::string& where) {
  Tensor out = Tensor::empty(entry.shape, TensorOptions(entry.dtype->strata));
  const uint8_t* source = data + entry.begin;
  const auto numel = static_cast<size_t>(numel_of(entry.shape));
  if (numel == 0) return out;
  switch (entry.dtype->widen) {
    case Widen::None:
      if (entry.dtype->strata == DType::Bool) {
        // NOTE: a bool byte other than 0 or 1 is undefined behaviour once read as bool.
        for (size_t i = 0; i < numel; ++i) {
          STRATA_CHECK(source[i] <= 1, where, ": tensor \"", entry.name, "\" (BOOL) holds byte ",
                       static_cast<int>(source[i]), " at element ", i, "; BOOL bytes are 0 or 1");
        }
      }
      std::memcpy(out.raw_data(), source, numel * entry.dtype->size);
      break;
    case Widen::SignedToInt64: {
      int64_t* target = out.data<int64_t>();
      const size_t size = entry.dtype->size;
      for (size_t i = 0; i < numel; ++i) {
        const uint8_t* at = source + size * i;
        target[i] = size == 1 ? read_le<int8_t>(at) : read_le<int16_t>(at);
      }
      break;
    }
    case Widen::UnsignedToInt64: {
      int64_t* target = out.data<int64_t>();
      const size_t size = entry.dtype->size;
      for (size_t i = 0; i < numel; ++i) {
        const uint8_t* at = source + size * i;
        target[i] = size == 2 ? read_le<uint16_t>(at) : read_le<uint32_t>(at);
      }
      break;
    }
  }
  return out;
}

std::string system_error() { return std::strerror(errno); }

std::vector<uint8_t> read_whole_file(const std::string& path, const char* caller) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  STRATA_CHECK(!error && std::filesystem::exists(status), caller, ": ", path,
               " does not exist");
  STRATA_CHECK(std::filesystem::is_regular_file(status), caller, ": ", path,
               " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  STRATA_CHECK(in.good(), caller, ": cannot open ", path, " (", system_error(), ")");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  STRATA_CHECK(size >= 0, caller, ": cannot find the size of ", path);
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  STRATA_CHECK(in.gcount() == size, caller, ": read ", in.gcount(), " of ", size, " bytes of ",
               path);
  return bytes;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

// ---- the format in memory -------------------------------------------------------------------

std::vector<uint8_t> save_safetensors_to_buffer(const TensorMap& tensors,
                                                const Metadata& metadata) {
  struct Item {
    const std::string* name;
    Tensor host;  // contiguous, on the CPU
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    STRATA_CHECK(name != "__metadata__", "save_safetensors: \"__metadata__\" is reserved by the "
                 "format and cannot name a tensor");
    STRATA_CHECK(tensor.defined(), "save_safetensors: tensor \"", name, "\" is undefined");
    items.push_back({&name, tensor.detach().cpu().contiguous()});
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return write_rank(a.host.dtype()) < write_rank(b.host.dtype());
  });

  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) {
    OrderedJson meta = OrderedJson::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const Item& item : items) {
    const uint64_t bytes = static_cast<uint64_t>(item.host.numel()) * item.host.element_size();
    header[*item.name] = {{"dtype", file_dtype_name(item.host.dtype())},
                          {"shape", item.host.shape()},
                          {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const OrderedJson::exception& e) {
    // dump() refuses strings that are not valid UTF-8, which the format requires.
    STRATA_CHECK(false, "save_safetensors: a tensor name or metadata string is not valid UTF-8 (",
                 e.what(), ")");
  }
  // Spaces up to a multiple of 8 keep the data 8-byte aligned in the file, as the package does.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + text.size() + offset);
  const uint64_t header_size = text.size();
  for (int byte = 0; byte < 8; ++byte) {
    out.push_back(static_cast<uint8_t>(header_size >> (8 * byte)));  // little-endian
  }
  out.insert(out.end(), text.begin(), text.end());
  for (const Item& item : items) {
    const size_t bytes = static_cast<size_t>(item.host.numel()) * item.host.element_size();
    const auto* begin = static_cast<const uint8_t*>(item.host.raw_data());
    if (bytes != 0) out.insert(out.end(), begin, begin + bytes);
  }
  return out;
}

SafetensorsFile load_safetensors_from_buffer(std::span<const uint8_t> bytes, Device device,
                                             const std::string& source) {
  const std::string where = "load_safetensors: " + source;
  STRATA_CHECK(bytes.size() >= 8, where, ": ", bytes.size(),
               " bytes is too short for a safetensors file (its header length alone is 8)");
  const uint64_t header_size = read_le<uint64_t>(bytes.data());
  STRATA_CHECK(header_size <= kMaxHeaderBytes, where, ": the header length is ", header_size,
               " bytes, over the format's limit of ", kMaxHeaderBytes,
               " (not a safetensors file, or a corrupt one)");
  STRATA_CHECK(header_size <= bytes.size() - 8, where, ": the header length is ", header_size,
               " bytes but only ", bytes.size() - 8, " follow it (a truncated file?)");
  const char* header_begin = reinterpret_cast<const char*>(bytes.data() + 8);
  const Json header = parse_header(header_begin, header_begin + header_size, where);

  const uint8_t* data = bytes.data() + 8 + header_size;
  const uint64_t data_size = bytes.size() - 8 - header_size;
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      file.metadata = parse_metadata(info, where);
    } else {
      entries.push_back(parse_entry(name, info, data_size, where));
    }
  }
  check_coverage(entries, data_size, where);
  for (const Entry& entry : entries) {
    Tensor tensor = make_tensor(entry, data, where);
    file.tensors.emplace(entry.name, device.is_cpu() ? tensor : tensor.to(device));
  }
  return file;
}

// ---- files ------------------------------------------------------------------------------------

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const Metadata& metadata) {
  write_file_atomic(path, save_safetensors_to_buffer(tensors, metadata));
}

SafetensorsFile load_safetensors(const std::string& path, Device device) {
  const std::vector<uint8_t> bytes = read_whole_file(path, "load_safetensors");
  return load_safetensors_from_buffer(bytes, device, path);
}

void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes,
                       const std::function<void(const std::string& temp_path)>& before_rename) {
  const std::filesystem::path target(path);
  STRATA_CHECK(!target.filename().empty(), "write_file_atomic: \"", path, "\" names no file");
  std::filesystem::path directory = target.parent_path();
  if (directory.empty()) directory = ".";

  std::random_device entropy;
  std::ostringstream suffix;
  suffix << ".tmp-" << ::getpid() << "-" << std::hex << entropy() << entropy();
  const std::string temp_path = path + suffix.str();

  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  STRATA_CHECK(fd >= 0, "write_file_atomic: cannot create ", temp_path, " (", system_error(),
               ")");
  // From here on, any failure removes the temporary file before reporting.
  auto fail = [&](const std::string& step, bool close_fd) {
    const std::string reason = system_error();
    if (close_fd) ::close(fd);
    ::unlink(temp_path.c_str());
    STRATA_CHECK(false, "write_file_atomic: ", step, " ", temp_path, " failed (", reason,
                 "); ", path, " is unchanged");
  };
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("writing", true);
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail("syncing", true);
  if (::close(fd) != 0) fail("closing", false);
  if (before_rename) {
    try {
      before_rename(temp_path);
    } catch (...) {
      ::unlink(temp_path.c_str());
      throw;
    }
  }
  if (::rename(temp_path.c_str(), path.c_str()) != 0) fail("renaming over " + path + ":", false);
  // The rename is durable only once the directory entry is on disk. Some file systems cannot
  // sync a directory (EINVAL); the file's own content is synced already, so that is no error.
  const int directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory_fd >= 0) {
    const int synced = ::fsync(directory_fd);
    const int sync_errno = errno;
    const std::string reason = system_error();
    ::close(directory_fd);
    STRATA_CHECK(synced == 0 || sync_errno == EINVAL, "write_file_atomic: ", path,
                 " was written but syncing its directory ", directory.string(), " failed (",
                 reason, ")");
  }
}

// ---- modules ----------------------------------------------------------------------------------

void save(const nn::Module& module, const std::string& path, const Metadata& metadata) {
  save_safetensors(path, module.state_dict(), metadata);
}

Metadata load(nn::Module& module, const std::string& path, bool strict, bool cast) {
  SafetensorsFile file = load_safetensors(path);
  const nn::StateDict own = module.state_dict();
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [name, tensor] : own) {
    const auto it = file.tensors.find(name);
    if (it == file.tensors.end()) {
      missing.push_back(name);
    } else if (it->second.shape() != tensor.shape()) {
      mismatched.push_back(name + " " + shape_str(it->second.shape()) + " in the file, " +
                           shape_str(tensor.shape()) + " in the module");
    }
  }
  if (strict) {
    for (const auto& entry : file.tensors) {
      if (own.count(entry.first) == 0) unexpected.push_back(entry.first);
    }
  } else {
    missing.clear();  // not strict: keys on either side only may be absent on the other
  }
  STRATA_CHECK(missing.empty() && unexpected.empty() && mismatched.empty(), "io::load: ", path,
               " does not match ", module.type_name(), " (missing: [", join(missing),
               "], unexpected: [", join(unexpected), "], shape mismatch: [", join(mismatched),
               "])");
  if (!strict) {
    // Module::load_state_dict with strict=false still copies only the module's own keys.
    for (auto it = file.tensors.begin(); it != file.tensors.end();) {
      it = own.count(it->first) ? std::next(it) : file.tensors.erase(it);
    }
  }
  try {
    module.load_state_dict(file.tensors, strict, cast);
  } catch (const Error& e) {
    STRATA_CHECK(false, "load: ", path, ": ", e.what());
  }
  return file.metadata;
}

}  // namespace strata::io
