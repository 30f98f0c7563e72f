"""Fill in test/data/hf-pipelines.json's expected ids with Hugging Face's `tokenizers` library (Rust).

Usage (from the repository root, with `pip install tokenizers`; the ids in the file came from 0.22.2):
    SMALLMIND_HF_DUMP=/tmp/hf-pipelines npx vitest run test/hf-tokenizer.test.ts   # writes <name>.json there
    python test/data/hf-pipelines-gen.py /tmp/hf-pipelines

For each pipeline and text: "plain" is encode without special tokens, with special tokens in the
text taken as plain text (encode_special_tokens); "special" is encode with the post-processor's
special tokens and special tokens in the text parsed; "decoded" is decode(plain, skip_special_tokens).
Texts that are not valid Unicode (lone surrogates) are not sent; their entries stay null.
"""
import json
import os
import sys

from tokenizers import Tokenizer

spec_path = os.path.join(os.path.dirname(__file__), 'hf-pipelines.json')
spec = json.load(open(spec_path, encoding='utf-8'))
dump = sys.argv[1]
for config in spec['configs']:
    tok = Tokenizer.from_file(os.path.join(dump, config['name'] + '.json'))
    plain, special, decoded = [], [], []
    for text in spec['texts']:
        tok.encode_special_tokens = True
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        plain.append(ids)
        with_specials = tok.encode(text, add_special_tokens=True).ids
        special.append(None if with_specials == ids else with_specials)
        decoded.append(tok.decode(ids, skip_special_tokens=True))
    config['expected'] = {'plain': plain, 'special': special, 'decoded': decoded}
with open(spec_path, 'w', encoding='utf-8') as f:
    json.dump(spec, f, ensure_ascii=False, separators=(',', ':'))
    f.write('\n')
