#include "template_subst.h"

#include <cctype>
#include <set>

#include "error.h"

namespace kf {

namespace {

bool is_name_char(char c, bool first) {
  return c == '_' || std::islower(static_cast<unsigned char>(c)) ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

int line_of(const std::string& text, size_t pos) {
  int line = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

}  // namespace

std::string substitute(const std::string& text, const TemplateParams& params,
                       const std::string& origin) {
  std::string out;
  out.reserve(text.size() + 256);
  std::set<std::string> used;
  std::string missing;
  size_t i = 0;
  while (i < text.size()) {
    const size_t at = text.find("${", i);
    if (at == std::string::npos) {
      out.append(text, i, std::string::npos);
      break;
    }
    out.append(text, i, at - i);
    size_t end = at + 2;
    while (end < text.size() && is_name_char(text[end], end == at + 2)) ++end;
    if (end == at + 2 || end >= text.size() || text[end] != '}')
      throw Error(origin + ":" + std::to_string(line_of(text, at)) +
                  ": malformed placeholder starting '" + text.substr(at, 24) +
                  "' (expected ${lower_case_name})");
    const std::string name = text.substr(at + 2, end - at - 2);
    const auto it = params.find(name);
    if (it == params.end()) {
      if (missing.find("'" + name + "'") == std::string::npos)
        missing += (missing.empty() ? "" : ", ") + ("'" + name + "'");
    } else {
      out += it->second;
      used.insert(name);
    }
    i = end + 1;
  }
  if (!missing.empty())
    throw Error(origin + ": no value for placeholder(s) " + missing);
  std::string unused;
  for (const auto& [name, value] : params)
    if (!used.count(name)) unused += (unused.empty() ? "" : ", ") + ("'" + name + "'");
  if (!unused.empty())
    throw Error(origin + ": value(s) " + unused + " given but no placeholder uses them");
  return out;
}

}  // namespace kf
