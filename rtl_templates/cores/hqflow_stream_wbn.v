// hqflow_stream_wbn: the Spike-driven Transformer's conv_bn / linear_bn, streaming and time-batched: the
// weighted core hqflow_stream_wlif.v (its window, its event-driven accumulation of P output channels by T
// steps, its cycles: the same formula with LIF_LANES lanes a cycle) with the requantization unit
// (hqflow_requant_unit.v) in place of its LIF unit:
//   y[t][o] = (acc[t][o] * m_int[o] + b_int[o]) >>> SHIFT     (numerics.requant; OUT_BITS two's complement)
// Stream out: elements (y*W + x)*O + o, each the T values y[0..T-1] (step t in bits [t*OUT_BITS, +OUT_BITS)).
// REQ_FILE: memfiles.requant_table, LIF_LANES lanes a line.
module hqflow_stream_wbn #(
    parameter integer H = 1, W = 1, C = 1, O = 1, K = 1, PAD = 0, P = 1,
    parameter integer BITS = 8, SCHEME = 0, ZERO_LEVEL = 0, ZP = 0,
    parameter integer X_BITS = 1, X_MAX = (1 << X_BITS) - 1, ACC_BITS = 32, T = 1,
    parameter integer LIF_LANES = P, ULTRA = 0, OUT_BITS = 2, SHIFT = 0,
    parameter ROM_FILE = "weights.mem", REQ_FILE = "requant.mem",
    parameter integer ROM_TAIL = 0, parameter ROM_TAIL_FILE = "weights_tail.mem", parameter integer LIST_LUTRAM = 1,
    parameter integer MUL_TREE = 1
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  s_tvalid,
    output wire                  s_tready,
    input  wire [T*X_BITS-1:0]   s_tdata,
    output wire                  m_tvalid,
    input  wire                  m_tready,
    output wire [T*OUT_BITS-1:0] m_tdata,
    output wire                  m_tlast,
    output wire                  active
);
    hqflow_stream_wlif #(.H(H), .W(W), .C(C), .O(O), .K(K), .PAD(PAD), .P(P), .BITS(BITS), .SCHEME(SCHEME),
                         .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(X_BITS), .X_MAX(X_MAX), .ACC_BITS(ACC_BITS),
                         .V_BITS(2), .F(0), .T(T), .LIF_LANES(LIF_LANES), .ULTRA(ULTRA), .ROM_FILE(ROM_FILE),
                         .ROM_TAIL(ROM_TAIL), .ROM_TAIL_FILE(ROM_TAIL_FILE), .LIST_LUTRAM(LIST_LUTRAM),
                         .MUL_TREE(MUL_TREE), .REQUANT(1), .OUT_BITS(OUT_BITS), .SHIFT(SHIFT), .REQ_FILE(REQ_FILE))
        core (.clk(clk), .rst(rst), .s_tvalid(s_tvalid), .s_tready(s_tready), .s_tdata(s_tdata), .m_tvalid(m_tvalid),
              .m_tready(m_tready), .m_tdata(m_tdata), .m_tlast(m_tlast), .active(active));
endmodule
