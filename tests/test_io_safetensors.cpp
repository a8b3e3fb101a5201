// safetensors reading and writing: round trips of every dtype, the writer's layout, files
// written the way the Python package writes them (tests/data/gen_safetensors.py) including a
// PyTorch LSTM + Linear state dict that must reproduce PyTorch's outputs, one test per kind of
// malformed file, truncations and corruptions of a valid file (Error, never a crash), and
// io::save / io::load for modules. Files go to a fresh temporary directory per test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/io/safetensors.h"
#include "strata/strata.h"
#include "test_files.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace fs = std::filesystem;

using test::data_path;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A file from a header (unpadded) and `data_size` bytes of data (filled with 0x01, which is a
// valid BOOL); `header_size` overrides the length field.
std::vector<uint8_t> make_file(const std::string& header, size_t data_size,
                               std::optional<uint64_t> header_size = std::nullopt) {
  const uint64_t length = header_size.value_or(header.size());
  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + data_size);
  for (int byte = 0; byte < 8; ++byte) out.push_back(static_cast<uint8_t>(length >> (8 * byte)));
  for (const char c : header) out.push_back(static_cast<uint8_t>(c));
  out.resize(out.size() + data_size, uint8_t{1});
  return out;
}

io::SafetensorsFile parse(const std::vector<uint8_t>& bytes) {
  return io::load_safetensors_from_buffer(bytes);
}

// ---- round trips --------------------------------------------------------------------------

TEST(IoSafetensors, RoundTripsEveryDtypeShapeAndMetadata) {
  io::TensorMap tensors;
  tensors["f32"] = random_f32({3, 4}, -2, 2, 1).t();  // non-contiguous: written row-major
  tensors["f64"] = f64({0.1, -1e300, 2.0});
  tensors["i64"] = i64({-(int64_t{1} << 62), 1, 0, int64_t{1} << 40}, {2, 2});
  tensors["u8"] = u8({0, 1, 128, 255});
  tensors["bool"] = boolean({true, false, true});
  tensors["f16"] = f32({1.5, -0.0f, 65504.0f, 6e-8f, -2.0f}).to(kFloat16);
  tensors["bf16"] = random_f32({2, 3}, -2, 2, 2).to(kBFloat16);
  tensors["i32"] = i64({-2147483648LL, 2147483647LL, -5}).to(kInt32);
  tensors["scalar"] = scalar_tensor(4.5);
  tensors["empty"] = zeros({0, 3});
  const io::Metadata metadata = {{"epoch", "3"}, {"note", "héllo"}};

  const auto bytes = io::save_safetensors_to_buffer(tensors, metadata);
  const io::SafetensorsFile file = parse(bytes);
  EXPECT_EQ(file.metadata, metadata);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    const Tensor& got = file.tensors.at(name);
    EXPECT_EQ(got.dtype(), expected.dtype());
    EXPECT_EQ(got.shape(), expected.shape());
    expect_close(got, expected, 0.0, 0.0);
  }
  // The 16-bit floats come back bit for bit (the sign of -0 included).
  EXPECT_EQ(file.tensors.at("f16").to_vector<Half>()[1].bits, 0x8000);
}

TEST(IoSafetensors, WriterPadsTheHeaderAndAlignsTheData) {
  io::TensorMap tensors = {{"a_bool", boolean({true})}, {"b_f32", f32({1, 2, 3})},
                           {"c_i64", i64({7})}, {"d_u8", u8({9, 9})}, {"e_f64", f64({0.5})},
                           {"f_f16", f32({1}).to(kFloat16)}, {"g_bf16", f32({1}).to(kBFloat16)},
                           {"h_i32", i64({3}).to(kInt32)}};
  const auto bytes = io::save_safetensors_to_buffer(tensors);
  uint64_t header_size;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
  const std::string header(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
  EXPECT_EQ(header.find("__metadata__"), std::string::npos) << "no metadata given: none written";
  // The package's order: I64, F64, F32, I32, BF16, F16, U8, BOOL, so each tensor is aligned to
  // its size.
  const auto at = [&](const char* name) { return header.find(name); };
  EXPECT_LT(at("c_i64"), at("e_f64"));
  EXPECT_LT(at("e_f64"), at("b_f32"));
  EXPECT_LT(at("b_f32"), at("h_i32"));
  EXPECT_LT(at("h_i32"), at("g_bf16"));
  EXPECT_LT(at("g_bf16"), at("f_f16"));
  EXPECT_LT(at("f_f16"), at("d_u8"));
  EXPECT_LT(at("d_u8"), at("a_bool"));
  EXPECT_NE(header.find(R"("c_i64":{"dtype":"I64","shape":[1],"data_offsets":[0,8]})"),
            std::string::npos)
      << header;
  EXPECT_EQ(bytes.size(), 8 + header_size + 8 + 8 + 12 + 4 + 2 + 2 + 2 + 1);
}

TEST(IoSafetensors, ReadsAnUnpaddedHeader) {
  // Older writers did not pad; the reader must not insist on it.
  const auto bytes =
      make_file(R"({"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})", 3);
  EXPECT_NE((bytes.size() - 8 - 3) % 8, 0u);
  expect_tensor(parse(bytes).tensors.at("x"), kUInt8, {3}, {1, 1, 1});
}

TEST(IoSafetensors, IgnoresUnknownFieldsOfAnEntry) {
  const auto bytes = make_file(
      R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":{"k":[1]}}})", 1);
  expect_tensor(parse(bytes).tensors.at("x"), kUInt8, {1}, {1});
}

TEST(IoSafetensors, FileRoundTripOverwritesAtomicallyAndLeavesNoTemporaryFile) {
  TempDir dir;
  const std::string path = dir.file("weights.safetensors");
  io::save_safetensors(path, {{"w", f32({1, 2})}}, {{"version", "1"}});
  io::save_safetensors(path, {{"w", f32({3, 4, 5})}}, {{"version", "2"}});
  const io::SafetensorsFile file = io::load_safetensors(path);
  EXPECT_EQ(file.metadata.at("version"), "2");
  expect_tensor(file.tensors.at("w"), kFloat32, {3}, {3, 4, 5});
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"weights.safetensors"});
}

TEST(IoSafetensors, FailedWriteLeavesThePreviousFileAndNoTemporaryFile) {
  TempDir dir;
  const std::string path = dir.file("weights.safetensors");
  io::save_safetensors(path, {{"w", f32({1, 2})}});
  const auto replacement = io::save_safetensors_to_buffer({{"w", f32({9, 9, 9})}});
  std::string seen_temp;
  EXPECT_THROW(io::write_file_atomic(path, replacement,
                                     [&](const std::string& temp) {
                                       seen_temp = temp;
                                       // The temporary file is complete at this point.
                                       EXPECT_EQ(read_bytes(temp), replacement);
                                       throw std::runtime_error("simulated crash");
                                     }),
               std::runtime_error);
  EXPECT_EQ(seen_temp.rfind(path + ".tmp-", 0), 0u) << seen_temp;
  expect_tensor(io::load_safetensors(path).tensors.at("w"), kFloat32, {2}, {1, 2});
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"weights.safetensors"});
}

TEST(IoSafetensors, MissingFileAndDirectoryAreClearErrors) {
  TempDir dir;
  expect_error([&] { io::load_safetensors(dir.file("nope.safetensors")); },
               {"load_safetensors", "nope.safetensors", "does not exist"});
  expect_error([&] { io::save_safetensors(dir.file("no/such/dir/w.safetensors"), {}); },
               {"write_file_atomic", "cannot create"});
}

TEST(IoSafetensors, LoadsOntoTheRequestedDevice) {
  const auto bytes = io::save_safetensors_to_buffer({{"w", f32({1, 2})}});
  if (!cuda_is_available()) {
    expect_error([&] { io::load_safetensors_from_buffer(bytes, Device(kCUDA)); }, {"CUDA"});
    GTEST_SKIP() << "no CUDA device: only the error for a missing device is checked";
  }
  const io::SafetensorsFile file = io::load_safetensors_from_buffer(bytes, Device(kCUDA));
  EXPECT_TRUE(file.tensors.at("w").device().is_cuda());
  // And back: CUDA tensors are written from a host copy.
  const io::SafetensorsFile again =
      io::load_safetensors_from_buffer(io::save_safetensors_to_buffer(file.tensors));
  expect_tensor(again.tensors.at("w"), kFloat32, {2}, {1, 2});
}

// ---- files written as the Python package writes them ---------------------------------------

TEST(IoSafetensors, ReadsEveryDtypeOfThePythonFixture) {
  const io::SafetensorsFile file = io::load_safetensors(data_path("dtypes.safetensors"));
  EXPECT_EQ(file.metadata.at("note"), "dtypes");
  const auto& t = file.tensors;
  EXPECT_EQ(t.size(), 14u);
  expect_tensor(t.at("f32"), kFloat32, {2, 3}, {1.5, -2.25, 0.0, 3.0, 1e-3f, -7.0}, 0, 0);
  expect_tensor(t.at("f64"), kFloat64, {3}, {0.1, -1e300, 2.0}, 0, 0);
  EXPECT_EQ(t.at("i64").to_vector<int64_t>(),
            (std::vector<int64_t>{-(int64_t{1} << 62), 1, 0, int64_t{1} << 40}));
  expect_tensor(t.at("u8"), kUInt8, {4}, {0, 1, 128, 255});
  expect_tensor(t.at("bool"), kBool, {5}, {1, 0, 1, 1, 0});
  // F16, BF16 and I32 as they are; the other small integers widened to int64, exactly.
  const double inf = std::numeric_limits<double>::infinity();
  expect_tensor(t.at("f16"), kFloat16, {5}, {1.5, -0.0, 65504.0, std::ldexp(1.0, -24), inf}, 0, 0);
  EXPECT_TRUE(std::signbit(t.at("f16").to_vector<float>()[1])) << "-0.0 keeps its sign";
  expect_tensor(t.at("bf16"), kBFloat16, {3}, {1.0, -3.5, std::ldexp(1.0, 100)}, 0, 0);
  expect_tensor(t.at("i32"), kInt32, {3}, {-2147483648.0, 2147483647.0, -5});
  expect_tensor(t.at("i16"), kInt64, {2}, {-32768, 32767});
  expect_tensor(t.at("i8"), kInt64, {3}, {-128, 127, -1});
  expect_tensor(t.at("u16"), kInt64, {2}, {0, 65535});
  expect_tensor(t.at("u32"), kInt64, {2}, {7, 4294967295.0});
  expect_tensor(t.at("scalar"), kFloat32, {}, {4.5});
  expect_tensor(t.at("empty"), kFloat32, {0, 3}, {});
}

// The structure of the PyTorch model in gen_safetensors.py, with the same attribute names.
struct LstmLinearNet : nn::Module {
  std::shared_ptr<nn::LSTM> lstm;
  std::shared_ptr<nn::Linear> fc;
  LstmLinearNet() : Module("LstmLinearNet") {
    lstm = register_module("lstm", std::make_shared<nn::LSTM>(nn::RNNOptions{
                                       .input_size = 3, .hidden_size = 5, .num_layers = 2,
                                       .batch_first = true}));
    fc = register_module("fc", std::make_shared<nn::Linear>(5, 2));
  }
};

TEST(IoSafetensors, PyTorchStateDictLoadsIntoLstmAndLinearAndGivesPyTorchsOutputs) {
  LstmLinearNet net;
  const io::Metadata metadata = io::load(net, data_path("torch_lstm_linear.safetensors"));
  EXPECT_EQ(metadata.at("format"), "pt");
  const io::SafetensorsFile io_file =
      io::load_safetensors(data_path("torch_lstm_linear_io.safetensors"));
  const auto& ref = io_file.tensors;
  NoGradGuard no_grad;
  auto [output, state] = net.lstm->forward(ref.at("input"), {Tensor(), Tensor()});
  const Tensor y = (*net.fc)(output);
  // float32 on both sides through 2 layers x 4 steps of gates: a few ulps of drift per op.
  const double rtol = 1e-5, atol = 1e-6;
  expect_close(output, ref.at("lstm_output"), rtol, atol);
  expect_close(std::get<0>(state), ref.at("h_n"), rtol, atol);
  expect_close(std::get<1>(state), ref.at("c_n"), rtol, atol);
  expect_close(y, ref.at("output"), rtol, atol);
}

TEST(IoSafetensors, ModuleSaveLoadRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("net.safetensors");
  manual_seed(11);
  LstmLinearNet saved;
  io::save(saved, path, {{"epoch", "4"}});
  manual_seed(12);
  LstmLinearNet loaded;
  EXPECT_EQ(io::load(loaded, path).at("epoch"), "4");
  const nn::StateDict a = saved.state_dict(), b = loaded.state_dict();
  for (const auto& [name, tensor] : a) expect_close(b.at(name), tensor, 0.0, 0.0);
}

TEST(IoSafetensors, ModuleLoadNamesMissingUnexpectedAndMismatchedKeysAndChangesNothing) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  nn::Linear model(3, 2);
  const Tensor weight_before = model.weight.clone();
  io::save_safetensors(path, {{"weight", zeros({2, 4})}, {"extra", zeros({1})}});
  expect_error([&] { io::load(model, path); },
               {"io::load", "bad.safetensors", "Linear", "missing: [bias]",
                "unexpected: [extra]", "weight [2,4] in the file, [2,3] in the module"});
  expect_close(model.weight, weight_before, 0.0, 0.0);
  // Not strict: unexpected keys are skipped, missing ones keep their values.
  io::save_safetensors(path, {{"weight", ones({2, 3})}, {"extra", zeros({1})}});
  const Tensor bias_before = model.bias.clone();
  io::load(model, path, /*strict=*/false);
  expect_close(model.weight, ones({2, 3}), 0.0, 0.0);
  expect_close(model.bias, bias_before, 0.0, 0.0);
}

// ---- malformed files ------------------------------------------------------------------------

struct MalformedCase {
  const char* what;
  std::vector<uint8_t> bytes;
  std::vector<std::string> message;
};

TEST(IoSafetensors, RejectsEveryKindOfMalformedFile) {
  const std::string f32_2 = R"({"dtype":"F32","shape":[2],"data_offsets":)";
  std::vector<MalformedCase> cases = {
      {"shorter than 8 bytes", {1, 2, 3, 4, 5}, {"5 bytes is too short"}},
      {"absurd header length", make_file("{}", 0, 200'000'000), {"over the format's limit"}},
      {"header past the end", make_file("{}", 0, 100), {"header length is 100", "only 2 follow"}},
      {"not JSON", make_file("{abc", 0), {"not valid JSON"}},
      {"not an object", make_file("[1,2]", 0), {"is a JSON array, not an object"}},
      {"invalid UTF-8", make_file("{\"\xff\xfe\":1}", 0), {"not valid JSON"}},
      {"entry not an object", make_file(R"({"a":3})", 0), {"tensor \"a\"", "not an object"}},
      {"no dtype", make_file(R"({"a":{"shape":[],"data_offsets":[0,4]}})", 4), {"no \"dtype\""}},
      {"no shape", make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4),
       {"no \"shape\""}},
      {"no data_offsets", make_file(R"({"a":{"dtype":"F32","shape":[]}})", 4),
       {"no \"data_offsets\""}},
      {"unknown dtype", make_file(R"({"a":{"dtype":"F17","shape":[],"data_offsets":[0,4]}})", 4),
       {"unknown dtype \"F17\""}},
      {"unsupported dtype",
       make_file(R"({"a":{"dtype":"U64","shape":[],"data_offsets":[0,8]}})", 8),
       {"dtype U64", "cannot hold"}},
      {"negative dim", make_file(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", 0),
       {"dim 0 of its shape is -1", "negative"}},
      {"fractional dim",
       make_file(R"({"a":{"dtype":"U8","shape":[2.5],"data_offsets":[0,2]}})", 2),
       {"not an integer"}},
      {"shape not an array",
       make_file(R"({"a":{"dtype":"U8","shape":2,"data_offsets":[0,2]}})", 2), {"not an array"}},
      {"offsets not a pair", make_file(R"({"a":)" + f32_2 + "[0]}}", 8), {"not [begin, end]"}},
      {"begin after end", make_file(R"({"a":)" + f32_2 + "[8,0]}}", 8), {"begin > end"}},
      {"negative offset", make_file(R"({"a":)" + f32_2 + "[-8,0]}}", 8), {"negative"}},
      {"offsets past the data", make_file(R"({"a":)" + f32_2 + "[0,8]}}", 4),
       {"runs past the data, which holds 4 bytes"}},
      {"size not numel * element size",
       make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
       {"needs 12 bytes", "hold 8"}},
      {"shape overflowing 64 bits",
       make_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
                 8),
       {"more bytes than the file has"}},
      {"overlapping tensors",
       make_file(R"({"a":)" + f32_2 + R"([0,8]},"b":)" + f32_2 + "[4,12]}}", 12),
       {"\"b\" [4, 12) overlaps tensor \"a\""}},
      {"hole between tensors",
       make_file(R"({"a":)" + f32_2 + R"([0,8]},"b":)" + f32_2 + "[12,20]}}", 20),
       {"bytes [8, 12) before tensor \"b\" belong to no tensor"}},
      {"hole at the start", make_file(R"({"a":)" + f32_2 + "[4,12]}}", 12),
       {"bytes [0, 4) before tensor \"a\""}},
      {"trailing bytes", make_file(R"({"a":)" + f32_2 + "[0,8]}}", 9),
       {"bytes [8, 9) at the end of the data belong to no tensor"}},
      {"duplicate tensor name",
       make_file(R"({"a":)" + f32_2 + R"([0,8]},"a":)" + f32_2 + "[8,16]}}", 16),
       {"names \"a\" twice"}},
      {"duplicate metadata key", make_file(R"({"__metadata__":{"k":"1","k":"2"}})", 0),
       {"names \"k\" twice"}},
      {"metadata not strings", make_file(R"({"__metadata__":{"k":1}})", 0),
       {"\"__metadata__\" entry \"k\"", "not a string"}},
      {"metadata not an object", make_file(R"({"__metadata__":[]})", 0),
       {"\"__metadata__\" is a JSON array"}},
      {"bool byte not 0 or 1", [] {
         auto bytes = make_file(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", 2);
         bytes.back() = 2;
         return bytes;
       }(), {"holds byte 2 at element 1"}},
      {"deep nesting", make_file(std::string(64, '[') + std::string(64, ']'), 0),
       {"nests deeper than"}},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<std::string> parts = c.message;
    parts.push_back("load_safetensors: <buffer>");
    expect_error([&] { parse(c.bytes); }, parts);
  }
}

TEST(IoSafetensors, MalformedFileErrorNamesThePath) {
  TempDir dir;
  const std::string path = dir.file("broken.safetensors");
  write_bytes(path, {1, 2, 3});
  expect_error([&] { io::load_safetensors(path); }, {"load_safetensors: ", path, "too short"});
}

TEST(IoSafetensors, EveryTruncationOfAValidFileThrows) {
  const auto bytes = io::save_safetensors_to_buffer(
      {{"a", f32({1, 2, 3})}, {"b", i64({4})}, {"c", boolean({true, false})}}, {{"k", "v"}});
  for (size_t size = 0; size < bytes.size(); ++size) {
    SCOPED_TRACE(size);
    const std::vector<uint8_t> truncated(bytes.begin(), bytes.begin() + static_cast<long>(size));
    EXPECT_THROW(parse(truncated), Error);
  }
}

TEST(IoSafetensors, CorruptedBytesEitherLoadOrThrowStrataError) {
  // Every byte of a small file set to each of a few values: the header's text, lengths and
  // offsets all get hit. Any result is fine except a crash or another exception type.
  const auto bytes = io::save_safetensors_to_buffer(
      {{"a", f32({1, 2, 3})}, {"b", i64({4})}, {"c", boolean({true, false})}}, {{"k", "v"}});
  int rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const uint8_t value : {uint8_t{0}, uint8_t{'9'}, uint8_t{'"'}, uint8_t{0xff}}) {
      std::vector<uint8_t> corrupted = bytes;
      corrupted[i] = value;
      try {
        parse(corrupted);
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(IoSafetensors, WriterRejectsReservedAndUndefinedNames) {
  expect_error([] { io::save_safetensors_to_buffer({{"__metadata__", f32({1})}}); },
               {"save_safetensors", "reserved"});
  expect_error([] { io::save_safetensors_to_buffer({{"a", Tensor()}}); },
               {"save_safetensors", "\"a\" is undefined"});
  expect_error([] { io::save_safetensors_to_buffer({{"bad\xff", f32({1})}}); },
               {"save_safetensors", "not valid UTF-8"});
}

}  // namespace
}  // namespace strata::test
