/*
 * Script texts are Markdown written by the campaign's staff and shown to every caller: they are
 * rendered into DOM nodes built one by one, never through innerHTML, so no text can become markup
 * or script. The subset is what a call script needs: paragraphs, headings, bulleted and numbered
 * lists, **bold**, *italic*, `code`; links show as their text. {field} names are filled in from
 * the contact's lead (the caller reads "Hi Ann" rather than "Hi {first_name}").
 */

function inline(parent, text, fields) {
  const pattern = /(\*\*[^*]+\*\*|\*[^*]+\*|`[^`]+`|\[[^\]]+\]\([^)]*\)|\{[a-z0-9_]+\})/gi;
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > at) parent.append(text.slice(at, match.index));
    const token = match[0];
    let node;
    if (token.startsWith('**')) {
      node = document.createElement('strong');
      inline(node, token.slice(2, -2), fields);
    } else if (token.startsWith('*')) {
      node = document.createElement('em');
      inline(node, token.slice(1, -1), fields);
    } else if (token.startsWith('`')) {
      node = document.createElement('code');
      node.textContent = token.slice(1, -1);
    } else if (token.startsWith('[')) {
      node = document.createTextNode(token.slice(1, token.indexOf(']')));
    } else {
      const value = fields[token.slice(1, -1)];
      node = document.createTextNode(value === undefined || value === null || value === '' ? token : String(value));
    }
    parent.append(node);
    at = match.index + token.length;
  }
  if (at < text.length) parent.append(text.slice(at));
}

/** The Markdown `source` as a fragment of DOM nodes; `fields` fill {name} placeholders. */
export function renderMarkdown(source, fields = {}) {
  const fragment = document.createDocumentFragment();
  let list = null;
  let paragraph = null;
  const close = () => {
    list = null;
    paragraph = null;
  };
  for (const raw of String(source).split(/\r?\n/)) {
    const line = raw.trimEnd();
    const heading = /^(#{1,3})\s+(.*)$/.exec(line);
    const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
    if (line.trim() === '') {
      close();
    } else if (heading) {
      close();
      const h = document.createElement(`h${heading[1].length + 2}`);
      inline(h, heading[2], fields);
      fragment.append(h);
    } else if (bullet || numbered) {
      const tag = bullet ? 'UL' : 'OL';
      if (!list || list.tagName !== tag) {
        list = document.createElement(tag);
        fragment.append(list);
      }
      paragraph = null;
      const item = document.createElement('li');
      inline(item, (bullet || numbered)[1], fields);
      list.append(item);
    } else {
      list = null;
      if (!paragraph) {
        paragraph = document.createElement('p');
        fragment.append(paragraph);
      } else {
        paragraph.append(' ');
      }
      inline(paragraph, line.trim(), fields);
    }
  }
  return fragment;
}
