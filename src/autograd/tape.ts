/**
 * Reverse-mode autograd on the one op set: a Tape records, for each differentiable function
 * (functions.ts) called on Vars, a node holding its backward; `backward` runs the nodes in
 * reverse and accumulates gradients into the Parameters. Inference code never touches a tape.
 *
 * Ownership (who frees what):
 * - A Parameter owns its value and its grad (both allocated on the backend); `dispose()` frees them.
 *   Its grad lives across steps and only ever accumulates: zero it with `zeroGrad()`.
 * - `tape.input(tensor)` wraps a caller's tensor: the caller still owns it.
 * - Everything else a tape allocates (function outputs, tensors saved for the backward,
 *   gradients of non-parameters) belongs to the tape. `backward` frees each of them as soon as no
 *   remaining node needs it: a node's saved tensors, its output's value and its output's gradient
 *   go right after that node's backward. What remains after backward is the root's value (the
 *   loss), the values of Vars passed to `retain`, the grads of inputs made with requiresGrad, and
 *   outputs of calls that recorded no node; `dispose()` frees all of it. A tape can record again
 *   after dispose (one tape per step, or one reused).
 * - Var values are read-only to callers; a Var whose value backward freed cannot be used again.
 *
 * One backward per recording: backward consumes the tape. Gradient accumulation over
 * micro-batches is record → backward → dispose, repeated: parameter grads add up.
 */
import type { Backend } from '../backend/backend.js';
import * as ops from '../ops/index.js';
import type { Shape, Tensor } from '../tensor/tensor.js';

/** A value in a computation: a tensor, and (once backward reaches it) its gradient. */
export class Var {
  /** d(root)/d(value) once backward has reached this Var; null before, and where nothing flowed. */
  grad: Tensor | null = null;
  /** @internal The allocation behind `grad` (grad may be a reshaped view of it); null for parameters. */
  gradBase: Tensor | null = null;
  /** @internal The node that computed this Var (null for leaves and no-grad results). */
  node: Node | null = null;
  /** @internal False once backward has freed the value. */
  alive = true;

  constructor(
    readonly value: Tensor,
    /** Whether gradients flow to (and through) this Var. */
    readonly requiresGrad: boolean,
  ) {}

  get shape(): Shape {
    return this.value.shape;
  }

  /** The value of a one-element Var (e.g. a loss) as a number. */
  item(): number {
    if (this.value.numel !== 1) throw new Error(`item() on a Var of shape [${this.value.shape}]`);
    return this.value.f32()[0]!;
  }
}

/** The parameter shape src/train/optim.ts works on: views on the value and the gradient. */
export interface OptimParam {
  name: string;
  data: Float32Array;
  grad: Float32Array;
  decay: boolean;
}

export interface ParameterOptions {
  /** Whether the optimizer applies weight decay (matrices yes; norms, biases no). Default true. */
  decay?: boolean;
  /** false: a frozen weight (no grad; e.g. a quantized base model under LoRA). Default true. */
  trainable?: boolean;
}

/** A weight that persists across steps. It owns its value and (if trainable) its f32 grad. */
export class Parameter extends Var {
  readonly decay: boolean;

  /** Takes ownership of `value` (allocated on `be`). */
  constructor(
    private readonly be: Backend,
    readonly name: string,
    value: Tensor,
    opts: ParameterOptions = {},
  ) {
    super(value, opts.trainable ?? true);
    this.decay = opts.decay ?? true;
    if (this.requiresGrad) {
      if (value.dtype !== 'f32') throw new Error(`parameter ${name}: a trainable parameter must be f32, got ${value.dtype}`);
      this.grad = be.alloc('f32', value.shape);
    }
  }

  /** A new f32 parameter holding a copy of `values`. */
  static fromValues(be: Backend, name: string, shape: Shape, values: ArrayLike<number>, opts?: ParameterOptions): Parameter {
    const value = be.alloc('f32', shape);
    if (values.length !== value.numel) throw new Error(`parameter ${name}: ${values.length} values for shape [${shape}]`);
    value.f32().set(values);
    return new Parameter(be, name, value, opts);
  }

  zeroGrad(): void {
    this.grad?.bytes.fill(0);
  }

  /** The value and gradient as Float32Arrays (views, no copy) for the optimizer. */
  optimParam(): OptimParam {
    if (!this.grad) throw new Error(`parameter ${this.name} is frozen (not trainable)`);
    return { name: this.name, data: this.value.f32(), grad: this.grad.f32(), decay: this.decay };
  }

  dispose(): void {
    if (!this.alive) return;
    this.alive = false;
    this.be.free(this.value);
    if (this.grad) this.be.free(this.grad);
    this.grad = null;
  }
}

/**
 * What a node's backward uses to hand out gradients. Kernels either accumulate into a gradient
 * (`acc`) or overwrite a fresh one (`fresh`); contributions the op already holds go in with `add`.
 * The engine adds scratch results into existing grads and frees scratch after the node.
 */
export interface Grads {
  readonly be: Backend;
  /** v's gradient tensor for a kernel that ACCUMULATES (+=); zeros at first. Scratch if v needs no grad. */
  acc(v: Var): Tensor;
  /** A tensor of v's shape for a kernel that OVERWRITES it with v's gradient contribution. */
  fresh(v: Var): Tensor;
  /**
   * Add `src` to v's gradient. src may be this node's dy or one of its saved tensors: then, when
   * v has no gradient yet, it is handed over without a copy (so call add after the node's last
   * read of src).
   */
  add(v: Var, src: Tensor): void;
}

/** Computes the inputs' gradient contributions from dy, the gradient of the node's output. */
export type Backward = (dy: Tensor, g: Grads) => void;

/** @internal One recorded call. */
export interface Node {
  readonly op: string;
  readonly inputs: readonly Var[];
  readonly output: Var;
  readonly backward: Backward;
  /** Tensors only this node's backward needs (freed right after it). */
  readonly saved: Tensor[];
}

export class Tape {
  private nodes: Node[] = [];
  /** Every Var a call on this tape returned (marked dead on dispose). */
  private outputs: Var[] = [];
  /** Every tensor this tape allocated and has not freed. */
  private readonly owned = new Set<Tensor>();
  /** Leaves made with requiresGrad (their grads are the tape's until dispose). */
  private leaves: Var[] = [];
  private readonly retained = new Set<Var>();
  private gradEnabled = true;

  constructor(readonly be: Backend) {}

  /** Whether calls now record nodes (false inside noGrad). */
  get recording(): boolean {
    return this.gradEnabled;
  }

  /** Nodes recorded and not yet consumed by backward. */
  get size(): number {
    return this.nodes.length;
  }

  /** Bytes of the tensors this tape holds now. */
  get ownedBytes(): number {
    let n = 0;
    for (const t of this.owned) n += t.bytes.byteLength;
    return n;
  }

  /** Wrap a caller's tensor (it stays the caller's). requiresGrad: backward fills its grad (the tape's). */
  input(tensor: Tensor, requiresGrad = false): Var {
    const v = new Var(tensor, requiresGrad);
    if (requiresGrad) this.leaves.push(v);
    return v;
  }

  /** A zero-filled f32 tensor owned by this tape. */
  alloc(shape: Shape): Tensor {
    const t = this.be.alloc('f32', shape);
    this.owned.add(t);
    return t;
  }

  /** Free a tensor this tape owns (no-op for anything else: views, caller tensors, parameters). */
  release(t: Tensor | null): void {
    if (t && this.owned.delete(t)) this.be.free(t);
  }

  /** Run fn without recording: no nodes, nothing saved (evaluation). Results are still the tape's. */
  noGrad<T>(fn: () => T): T {
    const was = this.gradEnabled;
    this.gradEnabled = false;
    try {
      return fn();
    } finally {
      this.gradEnabled = was;
    }
  }

  /** Keep v's value through backward (until dispose), e.g. logits wanted for metrics. */
  retain(v: Var): Var {
    // a view (reshape) shares memory its source frees: retain the source instead
    if (v.node && !this.owned.has(v.value)) throw new Error(`retain: this Var is a view made by ${v.node.op}; retain the Var it views`);
    this.retained.add(v);
    return v;
  }

  /**
   * Record a call whose result `value` (allocated with `alloc`, or a view of an input) was just
   * computed from `inputs`. `saved`: tensors (the tape's) that only `backward` needs. Returns the
   * output Var; when nothing needs a gradient (or inside noGrad) no node is kept and `saved` is
   * freed at once.
   */
  record(op: string, inputs: readonly Var[], value: Tensor, backward: Backward, saved: Tensor[] = []): Var {
    for (const v of inputs) if (!v.alive) throw new Error(`${op}: an input was freed by backward (retain it, or compute it again)`);
    const requiresGrad = this.gradEnabled && inputs.some((v) => v.requiresGrad);
    const output = new Var(value, requiresGrad);
    this.outputs.push(output);
    if (!requiresGrad) {
      for (const t of saved) this.release(t);
      return output;
    }
    const node: Node = { op, inputs, output, backward, saved };
    output.node = node;
    this.nodes.push(node);
    return output;
  }

  /**
   * Backpropagate from `root` (one value, e.g. the mean loss), seeding d(root) = scale (1/n to
   * average n micro-batches). Parameter grads accumulate; intermediates are freed as they finish.
   */
  backward(root: Var, scale = 1): void {
    if (root.value.numel !== 1) throw new Error(`backward: the root must hold one value, got [${root.value.shape}]`);
    if (!root.node) throw new Error('backward: the root was not recorded on this tape (no input needs a gradient, or it ran in noGrad, or backward ran already)');
    const seed = this.alloc(root.value.shape);
    seed.f32()[0] = scale;
    root.grad = root.gradBase = seed;
    this.runNodes(root);
  }

  /**
   * Backpropagate into the recording from `root` of any shape, whose gradient is `grad` (the
   * caller's; it is not freed): gradient checkpointing replays a block on its own tape and hands
   * its output the gradient the outer tape computed.
   */
  backwardWith(root: Var, grad: Tensor): void {
    if (!root.node) throw new Error('backwardWith: the root was not recorded on this tape');
    root.grad = grad;
    root.gradBase = null;
    this.runNodes(root);
  }

  private runNodes(root: Var): void {
    const nodes = this.nodes;
    this.nodes = [];
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      const out = node.output;
      if (out.grad) this.runBackward(node, out.grad);
      for (const t of node.saved) this.release(t);
      node.saved.length = 0;
      this.release(out.gradBase);
      out.grad = out.gradBase = null;
      out.node = null;
      if (out !== root && !this.retained.has(out)) {
        out.alive = false;
        this.release(out.value);
      }
    }
  }

  private runBackward(node: Node, dy: Tensor): void {
    const { be } = this;
    const scratch: { v: Var; t: Tensor }[] = [];
    const scratchFor = (v: Var): Tensor => {
      const t = be.alloc('f32', v.shape);
      scratch.push({ v, t });
      return t;
    };
    const out = node.output;
    const g: Grads = {
      be,
      acc: (v) => {
        if (!v.requiresGrad) return scratchFor(v);
        if (!v.grad) this.newGrad(v);
        return v.grad!;
      },
      fresh: (v) => {
        if (!v.requiresGrad || v.grad || v instanceof Parameter) return scratchFor(v);
        this.newGrad(v);
        return v.grad!;
      },
      add: (v, src) => {
        if (!v.requiresGrad) return;
        if (!v.grad && !(v instanceof Parameter) && this.takeOver(node, src)) {
          v.gradBase = src === dy ? out.gradBase : src;
          v.grad = src.shape === v.shape ? src : src.view(v.shape);
          if (src === dy) out.gradBase = null;
          return;
        }
        if (!v.grad) this.newGrad(v);
        ops.add(be, v.grad!, v.grad!, src);
      },
    };
    try {
      node.backward(dy, g);
      for (const { v, t } of scratch) if (v.requiresGrad) ops.add(be, v.grad!, v.grad!, t);
    } finally {
      for (const { t } of scratch) be.free(t);
    }
  }

  /** May `src` become an input's gradient as is? Yes for the node's own dy or a saved tensor. */
  private takeOver(node: Node, src: Tensor): boolean {
    const out = node.output;
    if (src === out.grad) return out.gradBase !== null;
    const at = node.saved.indexOf(src);
    if (at < 0) return false;
    node.saved.splice(at, 1);
    return true;
  }

  private newGrad(v: Var): void {
    v.grad = v.gradBase = this.alloc(v.shape);
  }

  /** Free everything the tape still holds and forget the recording; the tape can record again. */
  dispose(): void {
    for (const t of this.owned) this.be.free(t);
    this.owned.clear();
    for (const v of this.outputs) {
      v.node = null;
      v.alive = false;
      v.grad = v.gradBase = null;
    }
    for (const v of this.leaves) v.grad = v.gradBase = null;
    this.nodes = [];
    this.outputs = [];
    this.leaves = [];
    this.retained.clear();
  }
}
