// Reading and writing the safetensors format (the Hugging Face one, which PyTorch users save
// state dicts in): an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"key": "value"}, "name": {"dtype": "F32", "shape": [2, 3],
//                                              "data_offsets": [begin, end]}, ...}
// padded with spaces to a multiple of 8, then the tensors' bytes, offsets counted from the
// start of that buffer. A file is read whole and checked before any tensor is made: a
// malformed one throws strata::Error naming the file and the fault, and is never read out of
// bounds. Files are written atomically (see write_file_atomic).
//
//   io::save_safetensors("weights.safetensors", model.state_dict(), {{"epoch", "3"}});
//   io::SafetensorsFile file = io::load_safetensors("weights.safetensors");
//   model.load_state_dict(file.tensors);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "strata/device.h"
#include "strata/tensor.h"

namespace strata::nn {
class Module;
}  // namespace strata::nn

namespace strata::io {

// Free-form string pairs stored under "__metadata__".
using Metadata = std::map<std::string, std::string>;
using TensorMap = std::map<std::string, Tensor>;

struct SafetensorsFile {
  TensorMap tensors;
  Metadata metadata;
};

// ---- the format in memory -----------------------------------------------------------------
// The whole file as bytes. Tensors may live on any device and be non-contiguous: each is
// copied to the host in row-major order. Strata's dtypes map to F32, F64, F16, BF16, I64, I32,
// U8 and BOOL.
// The data is laid out by element size (largest first), then by name, so that every tensor
// starts at a multiple of its element size, as the safetensors package lays it out.
std::vector<uint8_t> save_safetensors_to_buffer(const TensorMap& tensors,
                                                const Metadata& metadata = {});

// Parses a whole file's bytes; the tensors are made on `device`. What is accepted:
// - dtypes F32, F64, F16, BF16, I64, I32, U8 and BOOL as they are; I8, I16, U16 and U32 widened
//   to int64 (Strata has no such types); any other dtype throws.
//   BOOL bytes must be 0 or 1.
// - A header need not be padded (older writers did not pad) and may carry unknown fields in
//   an entry (ignored, as the reference reader ignores them); "__metadata__" must map strings
//   to strings.
// What throws (the reference reader's rules): fewer than 8 bytes; a header length over 100 MB
// or past the end; a header that is not a JSON object or that repeats a name at any level;
// an entry without "dtype", "shape" or "data_offsets"; a negative dim; offsets that are not
// [begin, end] with begin <= end; a byte count other than numel * element size; and buffers
// that leave a hole, overlap or run past the data: sorted by begin, every tensor must start
// where the previous one ended, the first at 0, and the last must end at the end of the file
// (no trailing bytes). `source` names the data in error messages.
SafetensorsFile load_safetensors_from_buffer(std::span<const uint8_t> bytes,
                                             Device device = Device(DeviceType::CPU),
                                             const std::string& source = "<buffer>");

// ---- files --------------------------------------------------------------------------------
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const Metadata& metadata = {});
SafetensorsFile load_safetensors(const std::string& path,
                                 Device device = Device(DeviceType::CPU));

// Writes `bytes` so that `path` always holds either its previous content or all of `bytes`,
// never a part, even if the process dies midway: the bytes go to "<path>.tmp-<pid>-<random>"
// in the same directory, which is flushed and fsynced, renamed over `path`, and the directory
// is fsynced so the rename itself survives a power loss. On any failure the temporary file is
// removed and strata::Error names the step and the system's reason.
// `before_rename`, for tests, runs after the temporary file is complete and synced and just
// before the rename; if it throws, the temporary file is removed, `path` is untouched and the
// exception propagates: the state a crash at that point leaves, less the stray temporary file.
void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes,
                       const std::function<void(const std::string& temp_path)>& before_rename =
                           nullptr);

// ---- modules ------------------------------------------------------------------------------
// The module's state_dict() (parameters and buffers, PyTorch's names) as a safetensors file,
// which PyTorch reads back with safetensors.torch.load_file into a model of the same structure.
void save(const nn::Module& module, const std::string& path, const Metadata& metadata = {});
// Loads a file written by save() or by PyTorch's safetensors into `module`, moving values to
// the module's device and dtypes. Keys in both must agree in shape; a dtype mismatch that
// involves f16 or bf16 (a half-precision checkpoint into a float32 model) needs `cast`;
// when strict, every key of the module must be in the file and the file must hold no other
// key (not strict: the module's keys the file lacks keep their values, and the file's other
// keys are ignored). Otherwise strata::Error names the file and the missing, unexpected and
// mismatched keys, and the module is left unchanged.
// Returns the file's metadata.
Metadata load(nn::Module& module, const std::string& path, bool strict = true,
              bool cast = false);

}  // namespace strata::io
