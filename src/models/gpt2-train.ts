/**
 * GPT-2's training graph (nanoGPT's model.py on our autograd functions): the same computation as
 * Gpt2Model.forwardBatch (gpt2.ts), over B sequences of T tokens at once, recorded on a tape.
 * Parameters carry the GGUF names gpt2.ts loads; q, k and v are row views of the fused attn_qkv
 * weight and bias, as in inference. The classifier is tied to the token embedding (no
 * output.weight). With `bias` off (nanoGPT's default) the biases exist, are zero and stay zero,
 * so the exported model has the layout every GPT-2 reader expects.
 */
import * as F from '../autograd/functions.js';
import type { Parameter, Tape, Var } from '../autograd/tape.js';
import type { Backend } from '../backend/backend.js';
import type { Gpt2Config } from './gpt2.js';
import { checkpointed, dropoutAt, INIT_STD, ParamFactory, positionIds, rowsOf, type ForwardOptions, type ModelOptions, type TrainableModel } from './trainable.js';

interface LayerNormParams {
  weight: Parameter;
  bias: Parameter;
}

interface Linear {
  weight: Parameter;
  bias: Parameter;
}

interface Block {
  attnNorm: LayerNormParams;
  qkv: Linear;
  attnOutput: Linear;
  ffnNorm: LayerNormParams;
  ffnUp: Linear;
  ffnDown: Linear;
}

export class Gpt2TrainModel implements TrainableModel {
  readonly arch: { architecture: 'gpt2'; config: Gpt2Config };
  readonly params: readonly Parameter[];
  private readonly tokenEmbd: Parameter;
  private readonly positionEmbd: Parameter;
  private readonly blocks: Block[];
  private readonly outputNorm: LayerNormParams;

  constructor(be: Backend, readonly config: Gpt2Config, private readonly opts: ModelOptions) {
    this.arch = { architecture: 'gpt2', config };
    const f = new ParamFactory(be, opts.seed);
    const dim = config.embedding_length;
    const residualStd = INIT_STD / Math.sqrt(2 * config.block_count);
    const norm = (name: string): LayerNormParams => ({ weight: f.constant(`${name}.weight`, [dim], 1), bias: f.constant(`${name}.bias`, [dim], 0, opts.bias) });
    const linear = (name: string, rows: number, cols: number, std = INIT_STD): Linear => ({
      weight: f.normalInit(`${name}.weight`, [rows, cols], std),
      bias: f.constant(`${name}.bias`, [rows], 0, opts.bias),
    });
    this.tokenEmbd = f.normalInit('token_embd.weight', [config.vocab_size, dim], INIT_STD);
    this.positionEmbd = f.normalInit('position_embd.weight', [config.context_length, dim], INIT_STD);
    this.blocks = Array.from({ length: config.block_count }, (_, l): Block => {
      const blk = `blk.${l}`;
      return {
        attnNorm: norm(`${blk}.attn_norm`),
        qkv: linear(`${blk}.attn_qkv`, 3 * dim, dim),
        attnOutput: linear(`${blk}.attn_output`, dim, dim, residualStd),
        ffnNorm: norm(`${blk}.ffn_norm`),
        ffnUp: linear(`${blk}.ffn_up`, config.feed_forward_length, dim),
        ffnDown: linear(`${blk}.ffn_down`, dim, config.feed_forward_length, residualStd),
      };
    });
    this.outputNorm = norm('output_norm');
    this.params = f.params;
  }

  /** x · wᵀ (+ b when the model has biases). */
  private linear(t: Tape, x: Var, w: Var, b: Var): Var {
    const y = F.matmul(t, x, w);
    return this.opts.bias ? F.addBias(t, y, b) : y;
  }

  logits(t: Tape, inputs: Int32Array, opts: ForwardOptions): Var {
    const T = inputs.length / opts.batch;
    let x = F.add(t, F.embedding(t, this.tokenEmbd, inputs), F.embedding(t, this.positionEmbd, positionIds(opts.batch, T)));
    x = dropoutAt(t, x, this.opts.dropout, opts, 0);
    this.blocks.forEach((b, l) => {
      const block = (bt: Tape, bx: Var): Var => this.block(bt, bx, b, l, T, opts);
      x = this.opts.gradientCheckpointing ? checkpointed(t, x, block) : block(t, x);
    });
    const h = F.layernorm(t, x, this.outputNorm.weight, this.outputNorm.bias, this.config.layer_norm_epsilon);
    return F.matmul(t, h, this.tokenEmbd);
  }

  /** One transformer block over B sequences of T tokens. */
  private block(t: Tape, x: Var, b: Block, l: number, T: number, opts: ForwardOptions): Var {
    const c = this.config;
    const dim = c.embedding_length;
    const headDim = dim / c.head_count;
    const attention = { nHead: c.head_count, nKvHead: c.head_count, headDim, seqLen: T, scale: 1 / Math.sqrt(headDim) };
    const eps = c.layer_norm_epsilon;
    const p = this.opts.dropout;
    // attention: q, k, v are the thirds of the fused projection
    const h = F.layernorm(t, x, b.attnNorm.weight, b.attnNorm.bias, eps);
    const qkvBias = F.reshape(t, b.qkv.bias, [3, dim]);
    const [q, k, v] = [0, 1, 2].map((i) => this.linear(t, h, rowsOf(t, b.qkv.weight, i * dim, dim), rowsOf(t, qkvBias, i, 1))) as [Var, Var, Var];
    const att = F.attention(t, q, k, v, attention);
    x = F.add(t, x, dropoutAt(t, this.linear(t, att, b.attnOutput.weight, b.attnOutput.bias), p, opts, 1 + 2 * l));
    // feed-forward: down(gelu(up(x)))
    const h2 = F.layernorm(t, x, b.ffnNorm.weight, b.ffnNorm.bias, eps);
    const up = F.gelu(t, this.linear(t, h2, b.ffnUp.weight, b.ffnUp.bias));
    return F.add(t, x, dropoutAt(t, this.linear(t, up, b.ffnDown.weight, b.ffnDown.bias), p, opts, 2 + 2 * l));
  }

  loss(t: Tape, inputs: Int32Array, targets: Int32Array, opts: ForwardOptions): Var {
    return F.crossEntropy(t, this.logits(t, inputs, opts), targets);
  }

  dispose(): void {
    for (const p of this.params) p.dispose();
  }
}
