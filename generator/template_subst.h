// Strict ${name} substitution for kernel instance templates: a placeholder without a
// value, a value no placeholder uses, or a malformed `${` is an error, so a generated
// source can never carry a hole or silently ignore a config knob.
#pragma once
#include <map>
#include <string>

namespace kf {

using TemplateParams = std::map<std::string, std::string>;

// `origin` names the template in error messages (e.g. its path).
std::string substitute(const std::string& text, const TemplateParams& params,
                       const std::string& origin);

}  // namespace kf
