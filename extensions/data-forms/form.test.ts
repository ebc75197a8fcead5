/**
 * XEP-0004 form codec, XEP-0122 validation and the xs: lexical checks.
 * References: XEP-0004 §3.1–§3.3, XEP-0068 §3, XEP-0122 §3, XEP-0336 §3.1, XML Schema Part 2 §3.2.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Element, parse } from "ltx";
import { StanzaError } from "../../server/xml/errors.ts";
import { seededRandom } from "../../test/support/seeded-random.ts";
import {
  type DataForm,
  FORM_LIMITS,
  formToXml,
  formValue,
  formValues,
  parseBoolean,
  parseForm,
} from "./form.ts";
import {
  checkFieldValue,
  dynamicMarker,
  hasDynamicMarker,
  readValidation,
  validateElement,
} from "./validation.ts";
import {
  formatXsDateTime,
  isXsDate,
  isXsDateTime,
  isXsDuration,
  isXsTime,
  parseXsDateTime,
  parseXsInteger,
} from "./xs-types.ts";

const xml = (s: string) => parse(s) as Element;

function rejects(fn: () => unknown, condition: string, text?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StanzaError, `expected a StanzaError, got ${String(e)}`);
    assert.equal(e.condition, condition);
    if (text) assert.match(e.text ?? "", text);
    return true;
  });
}

describe("data forms (XEP-0004)", () => {
  it("round-trips a form through XML with FORM_TYPE first and extensions kept", () => {
    const form: DataForm = {
      type: "form",
      formType: "urn:example:config",
      title: "Settings",
      instructions: ["Fill this in", "Then submit"],
      fields: [
        {
          var: "name",
          type: "text-single",
          label: "Name",
          desc: "Your name",
          required: true,
          values: ["Ada"],
        },
        { var: "on", type: "boolean", values: ["true"], extra: [dynamicMarker("notSame")] },
        {
          var: "mode",
          type: "list-single",
          values: ["b"],
          options: [{ label: "A", value: "a" }, { value: "b" }],
          extra: [validateElement({ datatype: "xs:int", min: "1", max: "5" })],
        },
        { var: "tags", type: "text-multi", values: ["x", "y", ""] },
        { type: "fixed", values: ["Just text"] },
      ],
    };
    const el = formToXml(form);
    const firstField = el.getChildren("field")[0]!;
    assert.equal(firstField.attrs.var, "FORM_TYPE");
    assert.equal(firstField.attrs.type, "hidden");
    const back = parseForm(xml(el.toString()));
    assert.equal(back.formType, "urn:example:config");
    assert.equal(back.title, "Settings");
    assert.deepEqual(back.instructions, ["Fill this in", "Then submit"]);
    assert.equal(back.fields.length, 5);
    assert.deepEqual(formValues(back, "tags"), ["x", "y", ""]);
    assert.equal(formValue(back, "name"), "Ada");
    assert.equal(formValue(back, "FORM_TYPE"), "urn:example:config");
    assert.equal(back.fields[0]!.required, true);
    assert.equal(back.fields[0]!.desc, "Your name");
    assert.deepEqual(back.fields[2]!.options, [{ label: "A", value: "a" }, { value: "b" }]);
    assert.ok(hasDynamicMarker(back.fields[1]!, "notSame"));
    assert.deepEqual(readValidation(back.fields[2]!), { datatype: "xs:int", min: "1", max: "5" });
    // Writing the same value twice gives the same XML (extensions are copied, not moved).
    assert.equal(formToXml(form).toString(), el.toString());
  });

  it("reads prefixed extension elements as standalone elements (XEP-0325 getForm example)", () => {
    const form = parseForm(
      xml(`<x type='form' xmlns='jabber:x:data' xmlns:xdd='urn:xmpp:xdata:dynamic'
              xmlns:xdl='http://jabber.org/protocol/xdata-layout'>
             <title>DigitalOutput1</title>
             <xdl:page label='Output'><xdl:fieldref var='Output'/></xdl:page>
             <field var='xdd session' type='hidden'><value>325ED0F3</value></field>
             <field var='Output' type='boolean' label='Output'><value>true</value><xdd:notSame/></field>
           </x>`),
    );
    const output = form.fields.find((f) => f.var === "Output")!;
    assert.ok(hasDynamicMarker(output, "notSame"));
    assert.equal(output.extra![0]!.toString(), `<notSame xmlns="urn:xmpp:xdata:dynamic"/>`);
    assert.equal(form.extra![0]!.attrs.xmlns, "http://jabber.org/protocol/xdata-layout");
    assert.equal(formValue(form, "xdd session"), "325ED0F3");
    // Re-emitted on its own the element is still well-formed and namespaced.
    assert.match(
      formToXml(form).toString(),
      /<page label="Output" xmlns="http:\/\/jabber.org\/protocol\/xdata-layout"><fieldref var="Output"\/>/,
    );
  });

  it("accepts a submitted FORM_TYPE without a type attribute", () => {
    const form = parseForm(
      xml(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:a</value></field>
           <field var='a'><value>1</value></field></x>`),
    );
    assert.equal(form.formType, "urn:a");
    assert.deepEqual(
      form.fields.map((f) => f.var),
      ["a"],
    );
  });

  it("rejects malformed forms with bad-request", () => {
    rejects(() => parseForm(xml(`<x xmlns='jabber:x:data' type='bogus'/>`)), "bad-request", /form type/);
    rejects(() => parseForm(xml(`<x xmlns='jabber:x:data'/>`)), "bad-request", /form type/);
    rejects(() => parseForm(xml(`<x xmlns='urn:other' type='form'/>`)), "bad-request");
    rejects(
      () => parseForm(xml(`<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>`)),
      "bad-request",
      /twice/,
    );
    rejects(
      () => parseForm(xml(`<x xmlns='jabber:x:data' type='form'><field type='weird' var='a'/></x>`)),
      "bad-request",
      /unknown type/,
    );
    rejects(
      () => parseForm(xml(`<x xmlns='jabber:x:data' type='form'><field type='text-single'/></x>`)),
      "bad-request",
      /no var/,
    );
    rejects(
      () =>
        parseForm(
          xml(
            `<x xmlns='jabber:x:data' type='submit'><field var='b' type='boolean'><value>yes</value></field></x>`,
          ),
        ),
      "bad-request",
      /boolean/,
    );
    rejects(
      () =>
        parseForm(
          xml(
            `<x xmlns='jabber:x:data' type='submit'><field var='s' type='text-single'><value>1</value><value>2</value></field></x>`,
          ),
        ),
      "bad-request",
      /more than one value/,
    );
  });

  it("enforces its limits on fields, values and text", () => {
    const many = Array.from({ length: FORM_LIMITS.fields + 1 }, (_, i) => `<field var='f${i}'/>`).join("");
    rejects(
      () => parseForm(xml(`<x xmlns='jabber:x:data' type='submit'>${many}</x>`)),
      "bad-request",
      /fields/,
    );
    const values = Array.from({ length: FORM_LIMITS.valuesPerField + 1 }, () => "<value>v</value>").join("");
    rejects(
      () =>
        parseForm(
          xml(
            `<x xmlns='jabber:x:data' type='submit'><field var='m' type='text-multi'>${values}</field></x>`,
          ),
        ),
      "bad-request",
      /too many values/,
    );
    const long = "x".repeat(FORM_LIMITS.textLength + 1);
    rejects(
      () =>
        parseForm(
          xml(`<x xmlns='jabber:x:data' type='submit'><field var='a'><value>${long}</value></field></x>`),
        ),
      "bad-request",
      /longer than/,
    );
  });

  it("parses XEP-0004 booleans", () => {
    assert.equal(parseBoolean("1"), true);
    assert.equal(parseBoolean("true"), true);
    assert.equal(parseBoolean("0"), false);
    assert.equal(parseBoolean("false"), false);
    assert.equal(parseBoolean("TRUE"), undefined);
    assert.equal(parseBoolean("yes"), undefined);
  });
});

describe("XEP-0122 validation", () => {
  it("checks datatype and inclusive range", () => {
    const v = { datatype: "xs:int", min: "0", max: "100" };
    assert.equal(checkFieldValue(v, "0"), undefined);
    assert.equal(checkFieldValue(v, "100"), undefined);
    assert.match(checkFieldValue(v, "101") ?? "", /above 100/);
    assert.match(checkFieldValue(v, "-1") ?? "", /below 0/);
    assert.match(checkFieldValue(v, "1.5") ?? "", /not a valid xs:int/);
    assert.equal(checkFieldValue({ datatype: "xs:double", min: "-1.5" }, "-1.25"), undefined);
    assert.match(
      checkFieldValue({ datatype: "xs:dateTime", max: "2025-01-01T00:00:00Z" }, "2025-01-02T00:00:00Z") ?? "",
      /above/,
    );
    assert.equal(checkFieldValue({ datatype: "xs:string" }, "anything"), undefined);
    assert.match(checkFieldValue({ datatype: "xdc:Color" }, "12345") ?? "", /not a valid/);
  });
});

describe("xs: lexical types", () => {
  it("accepts valid and rejects invalid dates, times and durations", () => {
    for (const ok of ["2024-02-29", "2025-12-31Z", "2025-01-01+14:00", "-0044-03-15", "12345-01-01"])
      assert.ok(isXsDate(ok), ok);
    for (const no of [
      "2023-02-29",
      "2025-13-01",
      "2025-00-10",
      "2025-1-01",
      "0000-01-01",
      "2025-01-01+15:00",
      "01234-01-01",
    ])
      assert.ok(!isXsDate(no), no);
    for (const ok of ["00:00:00", "23:59:59.999", "24:00:00", "08:00:00-05:00"]) assert.ok(isXsTime(ok), ok);
    for (const no of ["24:00:01", "12:60:00", "8:00:00", "12:00"]) assert.ok(!isXsTime(no), no);
    for (const ok of ["PT3M30S", "P1Y2M3DT4H5M6.5S", "-P10D", "PT0S", "P0D"]) assert.ok(isXsDuration(ok), ok);
    for (const no of ["P", "PT", "P1DT", "1D", "P1.5D", "PT1H2", "P-1D"]) assert.ok(!isXsDuration(no), no);
    for (const ok of ["2013-04-02T08:00:00", "2025-02-01T10:00:00Z", "2025-02-01T10:00:00.123+02:00"])
      assert.ok(isXsDateTime(ok), ok);
    for (const no of ["2025-02-01 10:00:00", "2025-02-30T10:00:00Z", "2025-02-01T10:00Z"])
      assert.ok(!isXsDateTime(no), no);
  });

  it("converts dateTime with zones, and round-trips random instants", () => {
    assert.equal(parseXsDateTime("2025-02-01T10:00:00+02:00")!.toISOString(), "2025-02-01T08:00:00.000Z");
    assert.equal(parseXsDateTime("2025-02-01T24:00:00Z")!.toISOString(), "2025-02-02T00:00:00.000Z");
    assert.equal(parseXsDateTime("0050-06-01T00:00:00Z")!.getUTCFullYear(), 50);
    // No zone: the reader's own zone (XEP-0323 §8.1).
    assert.equal(parseXsDateTime("2025-02-01T10:00:00")!.getTime(), new Date(2025, 1, 1, 10, 0, 0).getTime());
    const next = seededRandom(323);
    for (let i = 0; i < 500; i++) {
      const d = new Date(Math.floor(next() * 4102444800000)); // 1970–2100
      const text = formatXsDateTime(d);
      assert.ok(isXsDateTime(text), text);
      assert.equal(parseXsDateTime(text)!.getTime(), d.getTime(), text);
    }
  });

  it("range-checks int (32-bit) and long (64-bit)", () => {
    assert.equal(parseXsInteger("2147483647", "int"), 2147483647n);
    assert.equal(parseXsInteger("-2147483648", "int"), -2147483648n);
    assert.equal(parseXsInteger("2147483648", "int"), undefined);
    assert.equal(parseXsInteger("9223372036854775807", "long"), 9223372036854775807n);
    assert.equal(parseXsInteger("-9223372036854775809", "long"), undefined);
    assert.equal(parseXsInteger("+12", "int"), 12n);
    assert.equal(parseXsInteger("1e3", "int"), undefined);
    assert.equal(parseXsInteger("", "int"), undefined);
  });
});

describe("multi-item results (XEP-0004 §3.4)", () => {
  const table: DataForm = {
    type: "result",
    title: "Rules",
    fields: [],
    reported: [
      { var: "id", label: "Rule", values: [] },
      { var: "scope", label: "Scope", values: [] },
    ],
    items: [
      [
        { var: "id", values: ["r1"] },
        { var: "scope", values: ["caller"] },
      ],
      [
        { var: "id", values: ["r2"] },
        { var: "scope", values: ["domain"] },
      ],
    ],
  };

  it("writes reported before the items and reads the rows back in order", () => {
    const x = formToXml(table);
    const names = x.getChildElements().map((c) => c.getName());
    assert.deepEqual(names, ["title", "reported", "item", "item"]);
    const back = parseForm(xml(x.toString()));
    assert.deepEqual(back.reported, table.reported);
    assert.deepEqual(back.items, table.items);
  });

  it("refuses an item before reported, a column not reported, or a row field without var", () => {
    const ns = "xmlns='jabber:x:data'";
    rejects(
      () => parseForm(xml(`<x ${ns} type='result'><item><field var='a'><value>1</value></field></item></x>`)),
      "bad-request",
      /before <reported/,
    );
    rejects(
      () =>
        parseForm(
          xml(
            `<x ${ns} type='result'><reported><field var='a'/></reported>` +
              `<item><field var='b'><value>1</value></field></item></x>`,
          ),
        ),
      "bad-request",
      /'b' is not in <reported/,
    );
    rejects(
      () => parseForm(xml(`<x ${ns} type='result'><reported><field type='fixed'/></reported></x>`)),
      "bad-request",
      /no var/,
    );
  });

  it("limits the number of rows", () => {
    const row = "<item><field var='a'><value>1</value></field></item>";
    const many = `<x xmlns='jabber:x:data' type='result'><reported><field var='a'/></reported>${row.repeat(
      FORM_LIMITS.items + 1,
    )}</x>`;
    rejects(() => parseForm(xml(many)), "bad-request", /items/);
  });
});
