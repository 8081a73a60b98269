// Strict ${name} substitution: filled values, every way a template and its values can
// disagree, malformed placeholders (reported with origin and line), and the real
// instance templates against the parameters the generator gives them.
#include <doctest/doctest.h>

#include "test_util.h"

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "error.h"
#include "linear_family.h"
#include "moe_family.h"
#include "template_subst.h"

namespace {

using namespace kf_test;

std::string read_template(const std::string& rel) {
  const std::string path = std::string(KF_TEMPLATE_DIR) + "/" + rel;
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_SUITE("template") {

TEST_CASE("substitute fills every placeholder, repeated ones too") {
  const std::string out = kf::substitute("void ${name}() { return ${n} * ${n} + ${block_k2}; }",
                                         {{"name", "f"}, {"n", "12"}, {"block_k2", "7"}}, "t");
  CHECK(out == "void f() { return 12 * 12 + 7; }");
  // Adjacent placeholders, at the very start and end, values with $ and braces inside
  // are inserted literally and not re-expanded.
  CHECK(kf::substitute("${a}${b}", {{"a", "${b}"}, {"b", "}"}}, "t") == "${b}}");
  CHECK(kf::substitute("${_x1}", {{"_x1", ""}}, "t") == "");
}

TEST_CASE("text without placeholders is unchanged") {
  const std::string text = "line 1\n$ dollar, {braces}, $name and $(x) and a trailing $";
  CHECK(kf::substitute(text, {}, "plain") == text);
  CHECK(kf::substitute("", {}, "empty") == "");
}

TEST_CASE("a placeholder without a value is an error naming it") {
  const std::string msg = error_of(
      [] { kf::substitute("a ${present} b ${missing_one} c ${missing_one}", {{"present", "1"}}, "inst.cu.in"); });
  CHECK(contains(msg, "'missing_one'"));
  CHECK(contains(msg, "inst.cu.in"));
  CHECK_FALSE(contains(msg, "'present'"));
  // Several missing: all named.
  const std::string two = error_of([] { kf::substitute("${a} ${bb}", {}, "o"); });
  CHECK(contains(two, "'a'"));
  CHECK(contains(two, "'bb'"));
}

TEST_CASE("a value no placeholder uses is an error naming it") {
  const std::string msg = error_of(
      [] { kf::substitute("x = ${used};", {{"used", "1"}, {"split_k", "2"}}, "decode.cu.in"); });
  CHECK(contains(msg, "'split_k'"));
  CHECK(contains(msg, "decode.cu.in"));
  CHECK_FALSE(contains(msg, "'used'"));
}

TEST_CASE("malformed placeholders: error with origin and line number") {
  struct Case {
    std::string text, line;
  };
  const Case cases[] = {
      {"ok ${a}\nsecond\nthird ${ no name", "my.cu.in:3:"},
      {"${Bad}", "my.cu.in:1:"},
      {"line1\n${x", "my.cu.in:2:"},
      {"line1\nline2\n${x y}", "my.cu.in:3:"},
      {"${1x}", "my.cu.in:1:"},
      {"${}", "my.cu.in:1:"},
      {"a\nb\nc\nd\ntrailing ${", "my.cu.in:5:"},
  };
  for (const auto& c : cases) {
    INFO("text: " << c.text);
    const std::string msg = error_of([&] { kf::substitute(c.text, {{"a", "1"}, {"x", "2"}}, "my.cu.in"); });
    CHECK(contains(msg, c.line));
    CHECK(contains(msg, "malformed"));
  }
  // The message quotes the offending text.
  CHECK(contains(error_of([] { kf::substitute("${Bad}", {}, "o"); }), "${Bad}"));
}

TEST_CASE("the real instance templates substitute cleanly with the generator's parameters") {
  const kf::LinearShape shapes[] = {{12288, 2048, 128, true, false}, {2048, 4096, 0, false, true}};
  for (const auto& arch : {"gfx1151", "gfx942", "sm_90a"})
    for (const auto& s : shapes) {
      const auto configs = kf::enumerate_linear_configs(s, kf::arch_info(arch));
      bool did_decode = false, did_prefill = false;
      for (const auto& cfg : configs) {
        // The skinny kind's instance is checked with its template's own tests.
        if (cfg.kind == kf::LinearKind::skinny) continue;
        bool& done = cfg.kind == kf::LinearKind::decode ? did_decode : did_prefill;
        if (done) continue;
        done = true;
        const kf::Candidate c = kf::make_linear_candidate(s, cfg, kf::arch_info(arch));
        INFO(std::string(arch) << " " << c.name);
        const std::string text = read_template(c.instance);
        REQUIRE(contains(text, "${"));
        const std::string out = kf::substitute(text, c.params, c.instance);
        CHECK_FALSE(contains(out, "${"));
        CHECK(contains(out, "void " + c.name + "(kf_linear_args args)"));
        CHECK(contains(out, "KF_LAUNCH_BOUNDS(" + std::to_string(c.threads) + ")"));
        CHECK(contains(out, "/*N=*/" + std::to_string(s.n) + ","));
        CHECK(contains(out, "/*G=*/" + std::to_string(s.effective_group()) + ","));
        CHECK(contains(out, std::string("/*ASYM=*/") + (s.asym ? "true" : "false")));
        CHECK(contains(out, "// config: " + c.params.at("config") + "\n"));
        CHECK(contains(out, std::string("w4a16_linear/") + c.kind + ".h"));
      }
      CHECK(did_decode);
      CHECK(did_prefill);
    }
}

TEST_CASE("every linear and MoE kind's instance template substitutes cleanly, each epilogue too") {
  // One config per (op, kind, epilogue) on sm_90a, where every kind exists.
  const kf::ArchInfo& arch = kf::arch_info("sm_90a");
  std::set<std::string> seen;
  auto render = [&](const kf::Candidate& c, const std::string& what) {
    if (!seen.insert(what).second) return;
    INFO(c.name);
    const std::string out = kf::substitute(read_template(c.instance), c.params, c.instance);
    CHECK_FALSE(contains(out, "${"));
    CHECK(contains(out, "void " + c.name + "("));
  };
  const kf::LinearShape s{12288, 2048, 128, true, false};
  for (const auto& cfg : kf::enumerate_linear_configs(s, arch))
    render(kf::make_linear_candidate(s, cfg, arch), std::string("linear ") + kf::kind_name(cfg.kind) +
                                                         (cfg.split_k > 1 ? " split" : ""));
  for (const kf::MoeShape& m : {kf::MoeShape{1, 256, 8, 1024, 2048, 128, true, false},
                                kf::MoeShape{2, 256, 8, 2048, 512, 128, true, false}})
    for (const auto& cfg : kf::enumerate_moe_configs(m, arch))
      render(kf::make_moe_candidate(m, cfg, arch), m.op() + " " + kf::kind_name(cfg.kind) + cfg.key().substr(cfg.key().rfind('_')));
  CHECK(seen.count("linear wgmma split"));
  CHECK(seen.count("w4a16_moe_gemm1 wgmma_silu"));
  CHECK(seen.count("w4a16_moe_gemm2 wgmma_red"));
}

TEST_CASE("a kind's parameters do not fit the other kind's template") {
  const kf::LinearShape s{2048, 512, 128, true, false};
  const kf::Candidate dec = kf::make_linear_candidate(
      s, {kf::LinearKind::decode, 1, 64, 32, 4, 1, 1}, kf::arch_info("gfx1151"));
  const kf::Candidate pre = kf::make_linear_candidate(
      s, {kf::LinearKind::prefill, 64, 64, 64, 4, 1, 1}, kf::arch_info("gfx1151"));
  // prefill.cu.in has ${warps}, which decode parameters lack (both kinds have stages).
  const std::string msg = error_of(
      [&] { kf::substitute(read_template(pre.instance), dec.params, pre.instance); });
  CHECK(contains(msg, "'warps'"));
  CHECK(contains(msg, "prefill.cu.in"));
  const std::string msg2 = error_of(
      [&] { kf::substitute(read_template(dec.instance), pre.params, dec.instance); });
  // ... and decode.cu.in has no ${warps}: an unused value is an error too.
  CHECK(contains(msg2, "'warps'"));
  CHECK(contains(msg2, "no placeholder uses"));
}

}  // TEST_SUITE
