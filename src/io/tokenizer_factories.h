// Builders behind make_tokenizer (qforge/io/tokenizer.h), one per tokenizer implementation.
#pragma once

#include <memory>
#include <string>

#include "qforge/io/tokenizer.h"

namespace qforge {

// "llama" vocabularies (sentencepiece_tokenizer.cc).
std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const Vocabulary& v,
                                                        const std::string& label);
// "gpt2" vocabularies (hf_tokenizer.cc).
std::unique_ptr<Tokenizer> make_byte_level_bpe_tokenizer(const Vocabulary& v,
                                                         const std::string& label);

}  // namespace qforge
