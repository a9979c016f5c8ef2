/**
 * A parser for the operator schema strings libtorch prints, e.g.
 *   aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor
 * Only what the generator needs: argument names, types, optionality, defaults, returns.
 */

export interface SchemaType {
  base: string; // 'Tensor', 'int', 'SymInt', 'float', 'bool', 'Scalar', 'str', 'ScalarType', ...
  optional: boolean; // `T?`
  list: boolean; // `T[]` or `T[N]`
  fixedLength?: number; // N of `int[N]`: a single number broadcasts
  elementOptional: boolean; // `Tensor?[]`
}

export interface SchemaArgument {
  name: string;
  type: SchemaType;
  hasDefault: boolean;
  keywordOnly: boolean;
}

export interface Schema {
  name: string;
  arguments: SchemaArgument[];
  returns: SchemaType[];
}

/** Splits on commas that are not inside brackets or parentheses. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last) parts.push(last);
  return parts;
}

export function parseType(text: string): SchemaType {
  // Alias annotations such as `Tensor(a!)` or `Tensor(a -> *)` do not change the JS type.
  let t = text.replace(/\([^)]*\)/g, '').trim();
  let optional = false;
  if (t.endsWith('?')) {
    optional = true;
    t = t.slice(0, -1);
  }
  const listMatch = /^(.*?)(\?)?\[(\d*)\]$/.exec(t);
  if (listMatch) {
    return {
      base: listMatch[1],
      optional,
      list: true,
      fixedLength: listMatch[3] ? Number(listMatch[3]) : undefined,
      elementOptional: listMatch[2] === '?',
    };
  }
  return { base: t, optional, list: false, elementOptional: false };
}

export function parseSchema(schema: string): Schema {
  const open = schema.indexOf('(');
  const arrow = schema.lastIndexOf(') -> ');
  if (open < 0 || arrow < 0) throw new Error(`gen-ops: cannot parse schema ${schema}`);
  const name = schema.slice(0, open);
  const args: SchemaArgument[] = [];
  let keywordOnly = false;
  for (const part of splitTopLevel(schema.slice(open + 1, arrow))) {
    if (part === '*') {
      keywordOnly = true;
      continue;
    }
    const eq = part.indexOf('=');
    const declaration = eq >= 0 ? part.slice(0, eq) : part;
    const space = declaration.lastIndexOf(' ');
    args.push({
      name: declaration.slice(space + 1).trim(),
      type: parseType(declaration.slice(0, space)),
      hasDefault: eq >= 0,
      keywordOnly,
    });
  }
  let returnsText = schema.slice(arrow + 5).trim();
  if (returnsText.startsWith('(') && returnsText.endsWith(')')) returnsText = returnsText.slice(1, -1);
  const returns = returnsText === ''
    ? []
    : splitTopLevel(returnsText).map((r) => {
        // Named returns: `Tensor values`.
        const space = r.replace(/\([^)]*\)/g, '').trim().split(' ');
        return parseType(space[0]);
      });
  return { name, arguments: args, returns };
}
