// hqflow weight lanes: P products x * w_eff of one input value x and P weight codes, per cycle.
//
// Codes are the ROM codes of hqflow.numerics.rom (BITS bits, lane p in bits [p*BITS, (p+1)*BITS)):
//   SCHEME 0  uniform-b   w_eff = code - ZP                     a (BITS+1) x (X_BITS+1) multiply
//   SCHEME 1  po2(z)-b    code = [neg : 1][shift : BITS-1]      w_eff = (-1)^neg << shift,
//                         ZERO_LEVEL: the all-ones shift is 0    a shift and a negation, no multiply
//   SCHEME 2  fp32        code = w_eff, 32-bit two's complement  a 32 x (X_BITS+1) multiply
// x is unsigned (X_BITS), products are ACC_BITS two's complement (exact: |x w_eff| <= acc_bound).
// Spike inputs (X_BITS 1) select w_eff or 0 in every scheme: no multiplier (and no DSP48) at all.
// `define HQFLOW_MUT_PO2_ZERO (a mutation control for the tests) takes shift 0 as the po2z zero code.

module hqflow_lane_uniform #(parameter BITS = 8, ZP = 0, X_BITS = 1, ACC_BITS = 32) (
    input  wire [BITS-1:0] code,
    input  wire [X_BITS-1:0] x,
    output wire signed [ACC_BITS-1:0] prod
);
    wire signed [BITS+1:0] w = $signed({2'b00, code}) - ZP;   // w_eff in [-(2^b - 1), 2^b - 1]
    wire signed [X_BITS:0] xs = $signed({1'b0, x});
    wire signed [BITS+X_BITS+2:0] p = X_BITS == 1 ? (x[0] ? w : 0) : w * xs;   // a spike gates w
    assign prod = p;
endmodule

module hqflow_lane_po2 #(parameter BITS = 4, ZERO_LEVEL = 0, X_BITS = 1, ACC_BITS = 32) (
    input  wire [BITS-1:0] code,
    input  wire [X_BITS-1:0] x,
    output wire signed [ACC_BITS-1:0] prod
);
    localparam [BITS-2:0] FIELD = {(BITS-1){1'b1}};
    wire [BITS-2:0] shift = code[BITS-2:0];
`ifdef HQFLOW_MUT_PO2_ZERO
    wire is_zero = (ZERO_LEVEL != 0) && (shift == 0);      // the zero code taken as shift 0
`else
    wire is_zero = (ZERO_LEVEL != 0) && (shift == FIELD);
`endif
    wire [ACC_BITS-1:0] magnitude = {{(ACC_BITS > X_BITS ? ACC_BITS - X_BITS : 1){1'b0}}, x} << shift;
    // a spike (x = 1): -(1 << shift) is the ones from bit `shift` up, bit by bit (no carry chain)
    wire [ACC_BITS-1:0] spike_w;
    genvar kb;
    generate
        for (kb = 0; kb < ACC_BITS; kb = kb + 1) begin : spike_bit
            assign spike_w[kb] = x[0] && (code[BITS-1] ? kb >= shift : kb == shift);
        end
    endgenerate
    assign prod = is_zero ? {ACC_BITS{1'b0}} : X_BITS == 1 ? spike_w : (code[BITS-1] ? -magnitude : magnitude);
endmodule

module hqflow_lane_fixed #(parameter X_BITS = 1, ACC_BITS = 64) (
    input  wire [31:0] code,
    input  wire [X_BITS-1:0] x,
    output wire signed [ACC_BITS-1:0] prod
);
    wire signed [31:0] w = code;
    wire signed [X_BITS:0] xs = $signed({1'b0, x});
    wire signed [X_BITS+32:0] p = X_BITS == 1 ? (x[0] ? w : 0) : w * xs;       // a spike gates w
    assign prod = p;
endmodule

// P lanes of one scheme over the P codes `codes` (lane p: bits [p*BITS, (p+1)*BITS)); lanes whose
// output channel is >= O (the padding of the last group) give 0 (`live` bit p clear).
module hqflow_lanes #(parameter P = 1, BITS = 8, SCHEME = 0, ZERO_LEVEL = 0, ZP = 0,
                      X_BITS = 1, ACC_BITS = 32) (
    input  wire [P*BITS-1:0] codes,
    input  wire [P-1:0] live,
    input  wire [X_BITS-1:0] x,
    output wire [P*ACC_BITS-1:0] prods
);
    genvar p;
    generate
        for (p = 0; p < P; p = p + 1) begin : lane
            wire signed [ACC_BITS-1:0] prod;
            if (SCHEME == 0) begin : u
                hqflow_lane_uniform #(.BITS(BITS), .ZP(ZP), .X_BITS(X_BITS), .ACC_BITS(ACC_BITS))
                    l (.code(codes[p*BITS +: BITS]), .x(x), .prod(prod));
            end else if (SCHEME == 1) begin : s
                hqflow_lane_po2 #(.BITS(BITS), .ZERO_LEVEL(ZERO_LEVEL), .X_BITS(X_BITS), .ACC_BITS(ACC_BITS))
                    l (.code(codes[p*BITS +: BITS]), .x(x), .prod(prod));
            end else begin : f
                hqflow_lane_fixed #(.X_BITS(X_BITS), .ACC_BITS(ACC_BITS))
                    l (.code(codes[p*BITS +: 32]), .x(x), .prod(prod));
            end
            assign prods[p*ACC_BITS +: ACC_BITS] = live[p] ? prod : {ACC_BITS{1'b0}};
        end
    endgenerate
endmodule
