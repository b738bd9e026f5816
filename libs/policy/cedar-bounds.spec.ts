import { describe, expect, it } from 'vitest';
import { cedarBoundsProblem, MAX_NESTING, MAX_OPERATORS, MAX_POLICY_CHARS } from './cedar-bounds.js';

const policy = (condition: string) => `permit(principal, action, resource) when { ${condition} };`;

describe('cedarBoundsProblem (issue 12, finding 2)', () => {
  it('accepts ordinary policies', () => {
    expect(cedarBoundsProblem(policy('context.params has amount && (context.params.amount <= 100 || context.approved)'))).toBeUndefined();
    expect(cedarBoundsProblem('permit(principal in Group::"a", action in [Action::"x", Action::"y"], resource is Tool);')).toBeUndefined();
  });

  it('refuses text longer than the bound', () => {
    expect(cedarBoundsProblem(`// ${'x'.repeat(MAX_POLICY_CHARS)}`)?.message).toMatch(/at most 65536 characters/);
  });

  it('refuses deep nesting, located at the first bracket too deep', () => {
    const deep = policy(`${'('.repeat(160)}true${')'.repeat(160)}`);
    expect(cedarBoundsProblem(deep)).toEqual({
      message: `nests brackets deeper than ${MAX_NESTING} levels`,
      line: 1,
      column: 'permit(principal, action, resource) when { '.length + 32,
    }); // the brace is level 1
    expect(cedarBoundsProblem(policy(`${'['.repeat(40)}1${']'.repeat(40)}.contains(1)`))?.message).toMatch(/nests brackets/);
    expect(cedarBoundsProblem(policy(`${'('.repeat(30)}true${')'.repeat(30)}`))).toBeUndefined();
  });

  it('refuses long operator chains, counted per policy', () => {
    const chain = policy(Array(3000).fill('true').join(' &&\n '));
    expect(cedarBoundsProblem(chain)).toMatchObject({
      message: `has more than ${MAX_OPERATORS} operators in one policy`,
      line: MAX_OPERATORS + 1,
    });
    const half = policy(Array(100).fill('context.approved').join(' || '));
    expect(cedarBoundsProblem(`${half}\n${half}\n${half}`)).toBeUndefined();
    expect(cedarBoundsProblem(policy(Array(200).fill('1').join(' + ')))?.message).toMatch(/operators/);
  });

  it('does not count brackets or operators inside strings and comments', () => {
    const quoted = policy(`context.subject == "${'('.repeat(100)}${'&& '.repeat(200)}\\" ((("`);
    expect(cedarBoundsProblem(quoted)).toBeUndefined();
    expect(cedarBoundsProblem(`// ${'('.repeat(100)} ${'&& '.repeat(200)}\n${policy('true')}`)).toBeUndefined();
    // A quote inside a comment does not open a string.
    expect(cedarBoundsProblem(`// "\n${policy(`${'('.repeat(40)}true${')'.repeat(40)}`)}`)).toMatchObject({ line: 2 });
  });

  it('does not count words that merely contain in, has, like or is', () => {
    expect(cedarBoundsProblem(policy(Array(150).fill('context.insight').join(' . ')))).toBeUndefined();
  });
});
