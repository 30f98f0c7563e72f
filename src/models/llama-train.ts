/**
 * Llama's training graph: the same computation as LlamaModel.forwardBatch (llama.ts) over B
 * sequences of T tokens, recorded on a tape. RMSNorm, RoPE on q and k (GGUF's interleaved pair
 * layout, as inference rotates them), GQA attention, SwiGLU feed-forward, no biases, classifier
 * tied to the token embedding. Parameters carry the GGUF names llama.ts loads.
 */
import * as F from '../autograd/functions.js';
import type { Parameter, Tape, Var } from '../autograd/tape.js';
import type { Backend } from '../backend/backend.js';
import { headDim, kvDim, type LlamaConfig } from './llama.js';
import { checkpointed, dropoutAt, INIT_STD, ParamFactory, type ForwardOptions, type ModelOptions, type TrainableModel } from './trainable.js';

interface Block {
  attnNorm: Parameter;
  wq: Parameter;
  wk: Parameter;
  wv: Parameter;
  wo: Parameter;
  ffnNorm: Parameter;
  ffnGate: Parameter;
  ffnUp: Parameter;
  ffnDown: Parameter;
}

export class LlamaTrainModel implements TrainableModel {
  readonly arch: { architecture: 'llama'; config: LlamaConfig };
  readonly params: readonly Parameter[];
  private readonly tokenEmbd: Parameter;
  private readonly blocks: Block[];
  private readonly outputNorm: Parameter;

  constructor(be: Backend, readonly config: LlamaConfig, private readonly opts: ModelOptions) {
    this.arch = { architecture: 'llama', config };
    const f = new ParamFactory(be, opts.seed);
    const dim = config.embedding_length;
    const ff = config.feed_forward_length;
    const residualStd = INIT_STD / Math.sqrt(2 * config.block_count);
    this.tokenEmbd = f.normalInit('token_embd.weight', [config.vocab_size, dim], INIT_STD);
    this.blocks = Array.from({ length: config.block_count }, (_, l): Block => {
      const blk = `blk.${l}`;
      return {
        attnNorm: f.constant(`${blk}.attn_norm.weight`, [dim], 1),
        wq: f.normalInit(`${blk}.attn_q.weight`, [dim, dim], INIT_STD),
        wk: f.normalInit(`${blk}.attn_k.weight`, [kvDim(config), dim], INIT_STD),
        wv: f.normalInit(`${blk}.attn_v.weight`, [kvDim(config), dim], INIT_STD),
        wo: f.normalInit(`${blk}.attn_output.weight`, [dim, dim], residualStd),
        ffnNorm: f.constant(`${blk}.ffn_norm.weight`, [dim], 1),
        ffnGate: f.normalInit(`${blk}.ffn_gate.weight`, [ff, dim], INIT_STD),
        ffnUp: f.normalInit(`${blk}.ffn_up.weight`, [ff, dim], INIT_STD),
        ffnDown: f.normalInit(`${blk}.ffn_down.weight`, [dim, ff], residualStd),
      };
    });
    this.outputNorm = f.constant('output_norm.weight', [dim], 1);
    this.params = f.params;
  }

  logits(t: Tape, inputs: Int32Array, opts: ForwardOptions): Var {
    const T = inputs.length / opts.batch;
    let x = dropoutAt(t, F.embedding(t, this.tokenEmbd, inputs), this.opts.dropout, opts, 0);
    this.blocks.forEach((b, l) => {
      const block = (bt: Tape, bx: Var): Var => this.block(bt, bx, b, l, T, opts);
      x = this.opts.gradientCheckpointing ? checkpointed(t, x, block) : block(t, x);
    });
    return F.matmul(t, F.rmsnorm(t, x, this.outputNorm, this.config.layer_norm_rms_epsilon), this.tokenEmbd);
  }

  /** One transformer block over B sequences of T tokens. */
  private block(t: Tape, x: Var, b: Block, l: number, T: number, opts: ForwardOptions): Var {
    const c = this.config;
    const hd = headDim(c);
    const rope = { headDim: hd, nRot: c.rope_dimension_count, theta: c.rope_freq_base, neox: false };
    const attention = { nHead: c.head_count, nKvHead: c.head_count_kv, headDim: hd, seqLen: T, scale: 1 / Math.sqrt(hd) };
    const eps = c.layer_norm_rms_epsilon;
    const p = this.opts.dropout;
    // attention: q, k, v projections, q and k rotated by position within each sequence
    const h = F.rmsnorm(t, x, b.attnNorm, eps);
    const q = F.rope(t, F.matmul(t, h, b.wq), { ...rope, nHead: c.head_count }, T);
    const k = F.rope(t, F.matmul(t, h, b.wk), { ...rope, nHead: c.head_count_kv }, T);
    const v = F.matmul(t, h, b.wv);
    const att = F.attention(t, q, k, v, attention);
    x = F.add(t, x, dropoutAt(t, F.matmul(t, att, b.wo), p, opts, 1 + 2 * l));
    // feed-forward: down(silu(gate(x)) · up(x))
    const h2 = F.rmsnorm(t, x, b.ffnNorm, eps);
    const hidden = F.swiglu(t, F.matmul(t, h2, b.ffnGate), F.matmul(t, h2, b.ffnUp));
    return F.add(t, x, dropoutAt(t, F.matmul(t, hidden, b.ffnDown), p, opts, 2 + 2 * l));
  }

  loss(t: Tape, inputs: Int32Array, targets: Int32Array, opts: ForwardOptions): Var {
    return F.crossEntropy(t, this.logits(t, inputs, opts), targets);
  }

  dispose(): void {
    for (const p of this.params) p.dispose();
  }
}
