// Where a tensor lives: Device{kCPU} or Device{kCUDA, index}.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace strata {

enum class DeviceType : uint8_t { CPU, CUDA };

inline constexpr DeviceType kCPU = DeviceType::CPU;
inline constexpr DeviceType kCUDA = DeviceType::CUDA;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType type_, int index_ = 0) : type(type_), index(index_) {}  // NOLINT

  // Parses "cpu", "cuda", "cuda:1".
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;  // "cpu", "cuda:0"

  friend bool operator==(const Device&, const Device&) = default;
};

std::ostream& operator<<(std::ostream& out, const Device& device);

}  // namespace strata
