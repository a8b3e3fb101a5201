// Device parsing and printing.
#include "strata/device.h"

#include <cctype>

#include "strata/error.h"

namespace strata {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return Device(DeviceType::CPU);
  if (text == "cuda") return Device(DeviceType::CUDA, 0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5) {
    const std::string digits = text.substr(5);
    bool all_digits = digits.size() <= 4;
    for (char c : digits) all_digits = all_digits && std::isdigit(static_cast<unsigned char>(c));
    if (all_digits) return Device(DeviceType::CUDA, std::stoi(digits));
  }
  STRATA_CHECK(false, "Device::parse: unknown device '", text,
               "' (expected 'cpu', 'cuda' or 'cuda:N')");
  return {};
}

std::string Device::str() const {
  return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index);
}

std::ostream& operator<<(std::ostream& out, const Device& device) { return out << device.str(); }

}  // namespace strata
