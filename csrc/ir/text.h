// The text form of HBIR (.hbir): printer and parser. The grammar is documented in docs/hbir.md;
// the printer's output is canonical, and print(parse(text)) == text for canonical text.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ir/ir.h"

namespace hbdk::ir {

std::string printModule(const Module& m);
// Parses and verifies. `filename` is used in error messages only. Throws ParseError for
// malformed text and VerifyError (with the file position of the op) for invalid IR.
std::unique_ptr<Module> parseModule(std::string_view text, const std::string& filename = "<string>");

}  // namespace hbdk::ir
