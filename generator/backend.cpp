#include "backend.h"

namespace kf {

std::unique_ptr<Backend> make_backend(const ArchInfo& arch, const ToolPaths& tools) {
  return arch.vendor == Vendor::amd ? amdgpu::make_backend(arch, tools)
                                    : nvptx::make_backend(arch, tools);
}

}  // namespace kf
