"""Read a report's DOM back: elements by data- attribute, with Python's own HTML parser."""

from __future__ import annotations

from html.parser import HTMLParser


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Element] = []
        self.text = ""

    def within(self, name: str) -> str | None:
        """The value of `name` on this element or its nearest ancestor that has it."""
        node: Element | None = self
        while node is not None:
            if name in node.attrs:
                return node.attrs[name]
            node = node.parent
        return None

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}


class Dom(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {}, None)
        self.elements: list[Element] = []
        self._stack = [self.root]
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs}, self._stack[-1])
        self._stack[-1].children.append(el)
        self.elements.append(el)
        if tag not in _VOID:
            self._stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs}, self._stack[-1])
        self._stack[-1].children.append(el)
        self.elements.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, 0, -1):
            if self._stack[i].tag == tag:
                del self._stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].text += data

    def having(self, attr: str, tag: str | None = None) -> list[Element]:
        return [e for e in self.elements if attr in e.attrs and (tag is None or e.tag == tag)]
