// Layer categories: what kind of layer a node is (convolution, dense / linear, normalisation, ...),
// decided in one place for every view (graph legend and colours, layered view, "Colour by").

export type Category =
  | 'input' | 'conv' | 'linear' | 'norm' | 'activation' | 'pool' | 'dropout' | 'reshape'
  | 'merge' | 'attention' | 'embedding' | 'recurrent' | 'math' | 'container' | 'other';

export const CATEGORY_LABELS: Record<Category, string> = {
  input: 'Input', conv: 'Convolution', linear: 'Dense / Linear', norm: 'Normalization',
  activation: 'Activation', pool: 'Pooling', dropout: 'Dropout / Noise', reshape: 'Reshape',
  merge: 'Merge', attention: 'Attention', embedding: 'Embedding', recurrent: 'Recurrent',
  math: 'Math op', container: 'Container', other: 'Other',
};

const RULES: [Category, RegExp][] = [
  ['attention', /attention|attn/i],
  ['embedding', /embed/i],
  ['recurrent', /lstm|gru|rnn|recurrent/i],
  ['conv', /conv/i],
  ['norm', /norm/i],
  ['pool', /pool/i],
  ['dropout', /dropout|noise/i],
  ['linear', /^dense$|linear|einsumdense|^bilinear$/i],
  ['activation', /relu|gelu|sigmoid|tanh|softmax|softmin|activation|silu|swish|^elu$|selu|softplus|softsign|mish|hardswish|hardsigmoid|leaky|^glu$|threshold/i],
  ['merge', /^(add|concatenate|concat|cat|stack|multiply|subtract|average|maximum|minimum|dot|iadd)$/i],
  ['reshape', /reshape|flatten|view|permute|transpose|squeeze|expand|repeat|crop|padding|^pad$|upsampl|resiz|getitem|split|chunk|slice|contiguous|identity|lambda|rescal|normalization_layer|cast/i],
  ['math', /^(mul|div|sub|pow|sqrt|rsqrt|exp|log|mean|sum|matmul|bmm|einsum|where|neg|abs|clip|clamp|max|min|masked_fill|type|to|float|arange|ones|zeros|truediv|floordiv|scaled_dot_product_attention)$/i],
];

/** What else about a node can decide its category (a class name alone is ambiguous). */
export interface CategoryHint {
  framework?: string | null;
  config?: Record<string, unknown> | null;
}

/** Hugging Face's `Conv1D` (GPT-2's projections: `transformers.pytorch_utils.Conv1D`) is a linear
 *  layer with a transposed weight (attributes `nf`, `nx`; no kernel). `torch.nn.Conv1d` is spelt
 *  with a lower-case d and Keras' `Conv1D` is a real convolution (framework keras, a kernel). */
export function isLinearConv1D(className: string, hint?: CategoryHint): boolean {
  if (className !== 'Conv1D' || !hint) return false;
  const cfg = hint.config || {};
  if ('kernel_size' in cfg || 'filters' in cfg) return false;
  return hint.framework === 'torch' || ('nf' in cfg && 'nx' in cfg);
}

export function categoryOf(className: string, isInput: boolean, hint?: CategoryHint): Category {
  const c = String(className || '');
  if (isInput || /^input(layer)?$/i.test(c)) return 'input';
  if (isLinearConv1D(c, hint)) return 'linear';
  for (const [cat, re] of RULES) if (re.test(c)) return cat;
  return 'other';
}
